"""Every Redis key and channel the hub and its workers use, named here and nowhere else (as arq's
`constants.py` does), so a reader can see the whole keyspace at once and no two modules disagree.

Ids are percent-encoded before they are joined with `:`, so no two (user, batch) pairs share a key:
user `a` with batch `b:c` and user `a:b` with batch `c` are different guards.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

import arq.constants

PREFIX = "hub:"
# Job ids of every job that has not ended, scored by its deadline (ms): what the sweeper walks.
ACTIVE = PREFIX + "active"
# Worker ids, scored by when (on Redis's clock, ms) each stops counting as alive unless it registers again.
WORKERS = PREFIX + "workers"
USER_CHANNEL_PREFIX = PREFIX + "user:"
# One pattern subscription per hub process receives every user's events.
USER_CHANNEL_PATTERN = USER_CHANNEL_PREFIX + "*"


def _part(value: str) -> str:
    return quote(value, safe="")


def job(job_id: str) -> str:
    """The job's record (a hash)."""
    return f"{PREFIX}job:{_part(job_id)}"


def guard(user_id: str, batch_id: str) -> str:
    """Holds the id of the user's running job for the batch: one job per (user, batch) at a time."""
    return f"{PREFIX}guard:{_part(user_id)}:{_part(batch_id)}"


def alive(job_id: str) -> str:
    """Exists while a worker is making the job: it sets it with a short expiry and renews it, so the job's
    liveness is judged on Redis's clock alone."""
    return f"{PREFIX}alive:{_part(job_id)}"


def user_jobs(user_id: str) -> str:
    """The user's recent job ids, scored by submission time (a sorted set)."""
    return f"{PREFIX}jobs:{_part(user_id)}"


def user_events(user_id: str) -> str:
    """The user's event log (a bounded stream): what sockets resume from."""
    return f"{PREFIX}events:{_part(user_id)}"


def job_events(job_id: str) -> str:
    """Every event of one job, in order (a list): what support reads and replays."""
    return f"{PREFIX}job-events:{_part(job_id)}"


def user_channel(user_id: str) -> str:
    """Where the user's events are published, live."""
    return USER_CHANNEL_PREFIX + _part(user_id)


def user_of_channel(channel: str) -> str:
    """The user id a channel from `USER_CHANNEL_PATTERN` belongs to, as `user_channel` encoded it."""
    return unquote(channel[len(USER_CHANNEL_PREFIX) :])


def user_language(user_id: str) -> str:
    """The language the user last opened a socket or stream in: their feed notifications are in it."""
    return f"{PREFIX}lang:{_part(user_id)}"


def ticket(ticket_id: str) -> str:
    """A single-use socket ticket (a string that expires)."""
    return f"{PREFIX}ticket:{_part(ticket_id)}"


def budget(action: str, user_id: str, window: int) -> str:
    """How many requests of `action` the user made in one rate-limit window (a counter that expires)."""
    return f"{PREFIX}limit:{action}:{_part(user_id)}:{window}"


def connections(user_id: str) -> str:
    """The user's open sockets and streams on every hub instance, scored by when each lapses (a sorted set)."""
    return f"{PREFIX}connections:{_part(user_id)}"


def told(click_id: str) -> str:
    """Exists once a click has been told its report is already being made, so a re-sent call tells it once."""
    return f"{PREFIX}told:{_part(click_id)}"


# arq's queue (a sorted set of job ids, by when each is due): where a job that no worker has taken waits.
ARQ_QUEUE = arq.constants.default_queue_name


def arq_held(job_id: str) -> tuple[str, str]:
    """arq's own keys for a job it has queued or is running: while either exists, arq still holds it."""
    return arq.constants.job_key_prefix + job_id, arq.constants.in_progress_key_prefix + job_id


def exhaust_request(request_id: str) -> str:
    """A data-exhaust request (a hash): what the Sunbird client asked for and the hub job answering it."""
    return f"{PREFIX}exhaust:request:{_part(request_id)}"


def exhaust_tag(tag: str) -> str:
    """The requests of one tag (`<courseId>_<batchId>:<channel>`), scored by submission time (a sorted set)."""
    return f"{PREFIX}exhaust:tag:{_part(tag)}"


def exhaust_channel(channel: str) -> str:
    """The requests of one channel, scored by submission time (a sorted set): what search reads."""
    return f"{PREFIX}exhaust:channel:{_part(channel)}"


def exhaust_lock(request_id: str) -> str:
    """Held while one request id is being looked up and submitted, so twin requests name one job."""
    return f"{PREFIX}exhaust:lock:{_part(request_id)}"


# Support's indexes of jobs (sorted sets of job ids scored by submission time, ms), so a search reads one
# index instead of scanning; each entry is trimmed, and each index expires, with the jobs it names.
def support_by_ref(ref: str) -> str:
    return f"{PREFIX}support:ref:{_part(ref)}"


def support_by_user(user_id: str) -> str:
    return f"{PREFIX}support:user:{_part(user_id)}"


def support_by_batch(batch_id: str) -> str:
    return f"{PREFIX}support:batch:{_part(batch_id)}"


def support_by_day(day: int) -> str:
    """`day`: whole days since 1970-01-01 UTC."""
    return f"{PREFIX}support:day:{day}"


def refused_clicks(user_id: str) -> str:
    """The user's clicks that made no job (403, 409, 429), a stream kept as long as reports are."""
    return f"{PREFIX}support:refused:{_part(user_id)}"


def delivered(job_id: str) -> str:
    """How many sockets, streams and polls each of the job's events reached (a hash: event id -> count)."""
    return f"{PREFIX}support:delivered:{_part(job_id)}"


# What support staff did and searched for: an append-only stream, kept AUDIT_RETENTION.
SUPPORT_AUDIT = PREFIX + "support:audit"
