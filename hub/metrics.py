"""Prometheus metrics of one hub process, on their own registry so tests can build many apps."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "hub_report_requests", "Download clicks by outcome", ["outcome"], registry=self.registry
        )
        self.sockets = Gauge("hub_open_sockets", "Open WebSocket and SSE connections", registry=self.registry)
        self.frames = Counter("hub_frames_sent", "Event frames sent to clients", ["transport"], registry=self.registry)
        self.workers = Gauge("hub_workers_alive", "Report workers alive (registered in Redis)", registry=self.registry)
        self.telemetry = Counter("hub_telemetry_events", "Telemetry events kept", registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
