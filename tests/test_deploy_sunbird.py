"""The Kong entries of deploy/sunbird/ lead where they say: a call Kong takes on an entry's `uris` and
sends on to its `upstream_url` (`strip_uri`: the rest of the path follows) reaches a hub route."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.helpers import MENTOR, Call

KONG = Path(__file__).parent.parent / "deploy" / "sunbird" / "kong" / "report-hub-apis.yml"
ENTRIES = {entry["name"]: entry for entry in yaml.safe_load(KONG.read_text())["kong_apis"]}
# The inventory values the file's comment names, and sunbird-devops' own prefix; the hub at the root.
VARIABLES = {
    "course_report_hub_prefix": "/report-hub",
    "course_report_hub_service_url": "",
    "dataset_service_prefix": "/dataset",
}
TAG = "do_course_0001_batch-0001"
SUBMIT = {"request": {"tag": TAG, "dataset": "progress-exhaust", "datasetConfig": {"batchId": "batch-0001"}}}
UNKNOWN = (200, "OK")  # the read route's own answer for a request id it never gave (as Sunbird: params failed)
# A call through each entry: method, the path the client asks Kong for, a body, and the route's answer.
THROUGH_KONG = {
    "courseReportHub": ("GET", "/report-hub/v1/mentor/batches", None, (200, "OK")),
    "submitDataExhaustRequest": ("POST", "/dataset/v1/request/submit", SUBMIT, (200, "OK")),
    "getDataExhaustRequest": ("GET", f"/dataset/v1/request/read/{TAG}?requestId=none", None, UNKNOWN),
    "listDataExhaustRequest": ("GET", f"/dataset/v1/request/list/{TAG}", None, (200, "OK")),
}


def filled(template: str) -> str:
    return re.sub(r"\{\{ (\w+) \}\}", lambda match: VARIABLES[match[1]], template)


def upstream_path(entry: dict, path: str) -> str:
    """What Kong asks the upstream for, `strip_uri` on: the upstream's path, then the rest of the call's."""
    uris = filled(entry["uris"])
    assert entry["strip_uri"] is True and path.startswith(uris)
    return filled(entry["upstream_url"]) + path.removeprefix(uris)


def test_the_entries_are_the_hubs_and_the_three_data_exhaust_ones_of_sunbird() -> None:
    assert set(ENTRIES) == set(THROUGH_KONG)
    for entry in ENTRIES.values():
        assert {"name": "jwt"} in entry["plugins"]


@pytest.mark.parametrize("name", THROUGH_KONG)
async def test_a_call_through_each_entry_reaches_a_hub_route(call: Call, token, name: str) -> None:
    method, path, body, answer = THROUGH_KONG[name]
    gateway = {"x-authenticated-user-token": token(MENTOR), "Authorization": "Bearer kong-consumer-key"}
    status, envelope = await call(method, upstream_path(ENTRIES[name], path), user=None, headers=gateway, json=body)
    assert (status, envelope["responseCode"]) == answer
