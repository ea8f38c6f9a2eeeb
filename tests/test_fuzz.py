"""Schemathesis against a live `hub serve` on loopback, driven by the OpenAPI document the hub serves:
a few generated requests per route (valid and invalid ones), a valid token on each, and every answer
held to the document and to the envelope. No 500, no answer the document does not describe, no stack
trace in any body.

Bounded: a few examples per route (FUZZ_EXAMPLES=200 for a deeper run by hand) and a time limit on each
request, a few seconds in all. The SSE stream is fuzzed without a token, so its error answers are tried;
with one it would answer forever. The document is loaded from the package, the one the hub serves
(test_openapi.py checks they are the same).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from importlib.resources import files

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hub.embedded import free_port
from hub.identity import mint_token
from tests.helpers import LINK_SECRET, MENTOR, SECRET, hub_command
from tests.openapi_doc import validator

EXAMPLES_PER_ROUTE = int(os.environ.get("FUZZ_EXAMPLES", "6"))
REQUEST_TIMEOUT_SECONDS = 5
TRACE_MARKERS = (b"Traceback (most recent call last)", b'File "/')
ENDLESS = "/v1/notifications/stream"
# The document itself is what OpenAPI tools read: the one JSON answer of /v1 outside the envelope.
DOCUMENT = "/v1/openapi.json"
ENVELOPES = {"/v1/": "Envelope", "/dataset/": "ExhaustEnvelope"}


@pytest.fixture(scope="module")
def live_hub(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`hub serve` on loopback with a seeded source, budgets wide enough for the fuzzer's requests (no
    worker: submitted jobs stay queued)."""
    folder = tmp_path_factory.mktemp("fuzz")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "REDIS_URL": redis_server,
        "SOURCE_URL": f"sqlite:///{folder / 'hub.db'}",
        "STORAGE_URL": f"file://{folder / 'reports'}",
        "JWT_SECRET": SECRET,
        "LINK_SECRET": LINK_SECRET,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "PUBLIC_URL": base,
        "TELEMETRY_PATH": str(folder / "telemetry.jsonl"),
        "RATE_LIMIT": "100000",
        "READ_RATE_LIMIT": "100000",
        "DASHBOARD_RATE_LIMIT": "100000",
    }
    seed = [*hub_command("seed", "--participants", "20", "--batch-id", "batch-0001", "--mentor", MENTOR)]
    subprocess.run(seed, env=env, check=True, capture_output=True, timeout=60)
    with (folder / "serve.log").open("wb") as log:
        server = subprocess.Popen(hub_command("serve"), env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, (folder / "serve.log").read_text()
            time.sleep(0.1)
        yield base
    finally:
        server.kill()
        server.wait()


# Loaded when the module is collected, so each route is a test of its own; the hub's address is given at
# each call.
schema = schemathesis.openapi.from_path(
    str(files("hub").joinpath("openapi.json")),
    config=schemathesis.Config.from_dict({
        "request-timeout": REQUEST_TIMEOUT_SECONDS,
        "generation": {"mode": "all", "max-examples": EXAMPLES_PER_ROUTE, "with-security-parameters": False},
        "phases": {"coverage": {"enabled": False}},
    }),
)  # fmt: skip


def envelope_and_no_trace(ctx: object, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """Every JSON answer of /v1 (and of the data-exhaust routes) is in its envelope; no body holds a trace."""
    for marker in TRACE_MARKERS:
        assert marker not in response.content, f"a stack trace in the body of {case.method} {case.path}"
    for prefix, name in ENVELOPES.items():
        if (
            case.path.startswith(prefix)
            and case.path != DOCUMENT
            and response.headers.get("content-type", [""])[0].startswith("application/json")
        ):
            errors = [
                error.message
                for error in validator({"$ref": f"#/components/schemas/{name}"}).iter_errors(response.json())
            ]
            assert not errors, f"{case.method} {case.path} answered outside the envelope: {errors}"


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_requests_get_documented_answers_never_a_500(case: schemathesis.Case, live_hub: str) -> None:
    token = mint_token(MENTOR, ["COURSE_MENTOR"], 600, SECRET)
    headers = {} if case.path == ENDLESS else {"Authorization": f"Bearer {token}"}
    case.call_and_validate(
        base_url=live_hub,
        headers=headers,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
            negative_data_rejection,
        ],
        additional_checks=[envelope_and_no_trace],
    )
