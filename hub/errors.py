"""Every error a client can be answered with, declared once: its HTTP status, its stable code (`params.err`)
and the sentence a person reads (`params.errmsg`). Handlers raise `NAME()` (or `NAME(detail=...)` where
the sentence names something); the envelope middleware turns it into the contract's answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class HubError(Exception):
    """An error the caller can act on; `errmsg` is shown to people, `code` is for programs."""

    def __init__(self, status: int, code: str, errmsg: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(errmsg)
        self.status = status
        self.code = code
        self.errmsg = errmsg
        self.result = result or {}
        self.headers: dict[str, str] = {}  # `Retry-After` and the like, sent with the answer


@dataclass(frozen=True)
class Problem:
    status: int
    code: str
    message: str  # a `str.format` template; its fields are the keyword arguments of the call
    retry_after_seconds: int | None = None  # the usual `Retry-After`, unless the call names its own

    def __call__(
        self, result: dict[str, Any] | None = None, retry_after: int | None = None, **details: object
    ) -> HubError:
        """`retry_after`: seconds after which the same call may succeed (sent as `Retry-After`)."""
        error = HubError(self.status, self.code, self.message.format(**details), result)
        retry = self.retry_after_seconds if retry_after is None else retry_after
        if retry is not None:
            error.headers["Retry-After"] = str(retry)
        return error


# The request itself
EMPTY_BODY = Problem(400, "INVALID_REQUEST", "The request body is empty; send a JSON object.")
INVALID_JSON = Problem(400, "INVALID_JSON", "The request body is not valid JSON.")
NOT_AN_OBJECT = Problem(400, "INVALID_REQUEST", "The request body must be a JSON object.")
FIELD_REQUIRED = Problem(400, "INVALID_REQUEST", "'{name}' is required and must be a non-empty string.")
FIELD_TOO_LONG = Problem(400, "INVALID_REQUEST", "'{name}' must be at most {limit} characters.")
REQUEST_TOO_LARGE = Problem(400, "REQUEST_TOO_LARGE", "The request body is over {limit} bytes.")
INVALID_ID = Problem(400, "INVALID_ID", "'{name}' is not an id this hub gives out or knows.")
INVALID_EVENT_ID = Problem(400, "INVALID_EVENT_ID", "The event id must look like '1732435200000-0'.")
INVALID_TELEMETRY = Problem(400, "INVALID_TELEMETRY", "{detail}")
FIELD_NOT_A_STRING = Problem(400, "INVALID_REQUEST", "'{name}', if sent, must be a string of 1 to {limit} characters.")
# The data-exhaust API's, in the analytics service's words
EXHAUST_FIELD_EMPTY = Problem(400, "CLIENT_ERROR", "{name} is empty")
DATASET_NOT_SUPPORTED = Problem(400, "CLIENT_ERROR", "dataset '{dataset}' is not supported; supported: {supported}")
FORMAT_NOT_SUPPORTED = Problem(400, "CLIENT_ERROR", "output_format '{value}' is not supported; supported: csv")
FILTERS_EMPTY = Problem(400, "CLIENT_ERROR", "Filters are empty")
UNSUPPORTED_FILTERS = Problem(400, "CLIENT_ERROR", "Unsupported filters; supported: {supported}")
INVALID_FILTER = Problem(400, "CLIENT_ERROR", "filters.{name} must be {kind}")
INVALID_SEARCH = Problem(400, "INVALID_REQUEST", "{detail}")
INVALID_LIMIT = Problem(400, "CLIENT_ERROR", "limit must be a whole number from 1 to {limit}")
# Who is calling
NO_BEARER = Problem(401, "UNAUTHORIZED", "Send 'Authorization: Bearer <token>' with this request.")
UNTRUSTED_TOKEN = Problem(401, "UNAUTHORIZED", "The access token is missing, malformed or not trusted.")
TOKEN_EXPIRED = Problem(401, "TOKEN_EXPIRED", "Your session has expired. Please sign in again.")
USER_MISMATCH = Problem(401, "UNAUTHORIZED", "X-Authenticated-Userid is not the user of the access token.")
ROLES_MALFORMED = Problem(401, "UNAUTHORIZED", "The access token's roles must be a list of role names or "
                                               "{{role, scope}} objects.")  # fmt: skip
INVALID_TICKET = Problem(401, "INVALID_TICKET", "The ticket is unknown, used or expired; ask for a new one.")
ORIGIN_NOT_ALLOWED = Problem(403, "ORIGIN_NOT_ALLOWED", "WebSocket connections from {origin} are not allowed.")
# What they may do
NOT_A_MENTOR = Problem(403, "NOT_A_MENTOR", "Only a mentor or the creator of this batch can do this.")
NOT_YOUR_JOB = Problem(403, "NOT_YOUR_JOB", "This report job was requested by someone else.")
NOT_SUPPORT = Problem(403, "NOT_SUPPORT", "Only support staff (role SUPPORT) can read job timelines.")
NOT_YOUR_TELEMETRY = Problem(403, "NOT_YOUR_TELEMETRY", "Event {index}: actor.id must be the signed-in user.")
LINK_EXPIRED = Problem(403, "LINK_EXPIRED", "This download link is invalid or has expired; ask for a fresh one.")
TOO_MANY_REQUESTS = Problem(429, "TOO_MANY_REQUESTS", "Too many requests; please wait a minute and try again.")
TOO_MANY_CONNECTIONS = Problem(
    429, "TOO_MANY_CONNECTIONS", "You already have {limit} live connections open; close a tab or app first."
)
# What they asked for
BATCH_NOT_FOUND = Problem(404, "BATCH_NOT_FOUND", "There is no batch with id '{batch_id}'.")
JOB_NOT_FOUND = Problem(404, "JOB_NOT_FOUND", "There is no report job with this id.")
FILE_NOT_FOUND = Problem(404, "FILE_NOT_FOUND", "This report file does not exist (any more).")
# The analytics service answers an unknown request with HTTP 200, `responseCode` OK and `params.status` failed.
REQUEST_NOT_FOUND = Problem(200, "OK", "no job available with the given request_id and tag")
REPORT_EXPIRED = Problem(404, "REPORT_EXPIRED", "This report has been deleted, as every report is after a while; "
                         "please request it again.")  # fmt: skip
NOTHING_TO_REPLAY = Problem(404, "NOTHING_TO_REPLAY", "This job has no notification to replay yet.")
DOWNLOAD_IN_PROGRESS = Problem(409, "DOWNLOAD_IN_PROGRESS", "Download in-progress. Please try after sometime")
# Our side
NOT_STARTED = Problem(503, "SERVICE_UNAVAILABLE", "The report could not be started; please try again.", 5)
REDIS_AWAY = Problem(503, "SERVICE_UNAVAILABLE", "The hub cannot reach its data store just now; please try again in a "
                     "moment.", 5)  # fmt: skip
SHUTTING_DOWN = Problem(503, "SHUTTING_DOWN", "This hub instance is shutting down; connect again.", 1)
TELEMETRY_FULL = Problem(503, "TELEMETRY_FULL", "Telemetry cannot be kept right now; please send it again later.")
SOURCE_AWAY = Problem(503, "SERVICE_UNAVAILABLE", "The course data cannot be reached just now; please try again in a "
                      "moment.", 5)  # fmt: skip
SOURCE_ERROR = Problem(500, "SOURCE_ERROR", "The course data cannot be read; the hub's operators have been told.")
REQUEST_BUSY = Problem(503, "SERVICE_UNAVAILABLE", "This request is being submitted by another call; please try again "
                       "in a moment.", 1)  # fmt: skip
IDENTITY_UNAVAILABLE = Problem(503, "SERVICE_UNAVAILABLE", "Sign-in cannot be checked right now; please try again.")
SERVER_ERROR = Problem(500, "SERVER_ERROR", "Something went wrong on our side; please try again.")
