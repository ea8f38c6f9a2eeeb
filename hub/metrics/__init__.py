"""Every Prometheus metric of the hub and its workers, defined here and nowhere else.

One process, one registry (prometheus_client's default, which adds the process's own CPU, memory and
file-descriptor series): `hub serve` and `hub worker` each export what they count, and `hub dev`, which
runs both in one process, exports both. Counters and histograms are counted where things happen (a line
at each call site); gauges that describe the whole deployment (queue, workers, dependencies) are read
when Prometheus scrapes (`hub.metrics.collect`).

Label values are bounded: codes, size classes, transports, route templates, never ids or user input.
Known label values are created at import, so every series exists (at 0) before its first event, and an
alert or a dashboard panel never has to tell "none yet" from "not exported".
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from hub.errors import HubError

# The seed's promise, click to "ready", by participants in the batch: (class, upper bound of participants
# in the class, seconds allowed). The last class has no upper bound.
SIZE_CLASSES = (
    ("under_10k", 9_999, 10.0),
    ("10k_to_50k", 50_000, 20.0),
    ("50k_to_100k", 100_000, 60.0),
    ("over_100k", None, 120.0),
)
# Buckets resolving each class's limit (10, 20, 60, 120 s) and the goals well below them.
READY_BUCKETS = (0.25, 0.5, 1, 1.5, 2.5, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Why a report fails (`report.failed` reasons), created at start so a rule on one never sees "no data".
FAILURE_REASONS = ("BATCH_NOT_FOUND", "SOURCE_ERROR", "STORAGE_ERROR", "TIMED_OUT", "INTERNAL_ERROR", "NO_WORKER",
                   "WORKER_LOST", "ENQUEUE_FAILED")  # fmt: skip
TRANSPORTS = ("ws", "sse", "poll")
DEPENDENCIES = ("redis", "pubsub", "source", "storage")

# A `_created` series beside every counter doubles what Prometheus stores and no rule here reads it.
disable_created_metrics()


def size_class(participants: int) -> str:
    return next(name for name, most, _ in SIZE_CLASSES if most is None or participants <= most)


# Reports
REPORT_REQUESTS = Counter("hub_report_requests", "Download clicks, by outcome (submitted, duplicate)", ["outcome"])
REPORTS_ENDED = Counter(
    "hub_reports_ended", "Reports that ended, by outcome (success, failed) and failure reason", ["outcome", "reason"]
)
CLICK_TO_READY = Histogram(
    "hub_report_click_to_ready_seconds",
    "Time from the click to the stored file, by the seed's batch size class",
    ["size_class"],
    buckets=READY_BUCKETS,
)
REPORT_ROWS = Counter("hub_report_rows", "Rows written into reports that were made")
REPORT_BYTES = Counter("hub_report_bytes", "Bytes of reports that were made")
PART_WRITER_RESTARTS = Counter(
    "hub_part_writer_restarts", "Part-writer processes replaced (died, or stuck on a report given up)", ["lane"]
)
WORKER_JOBS_RUNNING = Gauge("hub_worker_jobs_running", "Reports this worker process is making now")
WORKER_JOB_SLOTS = Gauge("hub_worker_job_slots", "Reports this worker process makes at once, at most")

# The deployment, read from Redis when scraped (every hub and worker exports the same figures)
JOBS_QUEUED = Gauge("hub_jobs_queued", "Reports submitted and not yet started by a worker")
QUEUE_OLDEST_WAIT = Gauge("hub_queue_oldest_wait_seconds", "How long the oldest queued report has waited")
JOBS_RUNNING = Gauge("hub_jobs_running", "Reports being made by any worker")
WORKERS_ALIVE = Gauge("hub_workers_alive", "Report workers alive (registered in Redis)")
DEPENDENCY_UP = Gauge("hub_dependency_up", "Whether a service this process needs answers (1) or not (0)",
                      ["dependency"])  # fmt: skip

# Events and their delivery
EVENTS_EMITTED = Counter(
    "hub_events_emitted", "User-facing events handed to Redis to store and publish, by type", ["type"]
)
EVENTS_DELIVERED = Counter("hub_events_delivered", "Events sent to clients, by transport", ["transport"])
OPEN_CONNECTIONS = Gauge("hub_open_connections", "Open event connections, by transport (ws, sse)", ["transport"])
SLOW_READERS_DROPPED = Counter(
    "hub_slow_readers_dropped", "Sockets and streams dropped for not taking a frame within SEND_TIMEOUT"
)
SUBSCRIBERS_BEHIND = Counter(
    "hub_subscribers_fell_behind", "Times a connection's queue overflowed and it caught up from the event log"
)

# Sunbird's notification service
NOTIFICATIONS_SENT = Counter("hub_notifications_sent", "Feed notifications the notification service took")
NOTIFICATION_RETRIES = Counter("hub_notification_retries", "Feed notification attempts retried")
NOTIFICATIONS_FAILED = Counter(
    "hub_notifications_failed", "Feed notifications given up on, by reason (refused, dropped)", ["reason"]
)

# Telemetry
TELEMETRY_ACCEPTED = Counter("hub_telemetry_events_accepted", "Telemetry events accepted and kept")
TELEMETRY_REFUSED = Counter("hub_telemetry_batches_refused", "Telemetry batches refused, by error code", ["code"])

# HTTP
HTTP_REQUESTS = Counter(
    "hub_http_requests", "HTTP requests answered, by route template, method and status", ["route", "method", "status"]
)
HTTP_DURATION = Histogram(
    "hub_http_request_duration_seconds",
    "Time to answer an HTTP request (sockets and streams excluded), by route template and method",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)


def made(rows: int, size: int, submitted_at_ms: int) -> None:
    """A report was made: its rows and bytes, and the time from the click (on Redis's clock) to now, in its
    size class (a report has one row per participant)."""
    REPORT_ROWS.inc(rows)
    REPORT_BYTES.inc(size)
    CLICK_TO_READY.labels(size_class(rows)).observe(max(0.0, time.time() - submitted_at_ms / 1000))


@contextlib.contextmanager
def refusals(counter: Counter) -> Iterator[None]:
    """Counts an error the caller is told of (a `HubError`) by its code, and lets it go on its way."""
    try:
        yield
    except HubError as error:
        counter.labels(error.code).inc()
        raise


def _create_known_series() -> None:
    REPORTS_ENDED.labels("success", "none")
    for reason in FAILURE_REASONS:
        REPORTS_ENDED.labels("failed", reason)
    for name, _, _ in SIZE_CLASSES:
        CLICK_TO_READY.labels(name)
    for outcome in ("submitted", "duplicate"):
        REPORT_REQUESTS.labels(outcome)
    for lane in ("big", "small"):
        PART_WRITER_RESTARTS.labels(lane)
    for transport in TRANSPORTS:
        EVENTS_DELIVERED.labels(transport)
    for transport in TRANSPORTS[:2]:
        OPEN_CONNECTIONS.labels(transport)
    for event_type in ("report.submitted", "report.progress", "report.completed", "report.failed", "report.duplicate"):
        EVENTS_EMITTED.labels(event_type)
    for reason in ("refused", "dropped"):
        NOTIFICATIONS_FAILED.labels(reason)
    for code in ("INVALID_TELEMETRY", "NOT_YOUR_TELEMETRY", "TELEMETRY_FULL"):
        TELEMETRY_REFUSED.labels(code)


_create_known_series()
