"""Support staff find a mentor's job from what the mentor can tell them, see what happened to it, and put
it right, against a real hub, arq worker and Valkey; every step lands in the audit trail, and no answer to
support ever carries a link to the file."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from hub.job import REF_ALPHABET
from hub.request import HUB
from hub.routes.reports import index_for_support
from hub.source.seed import seed
from tests.helpers import MENTOR, SUPPORT, Call, next_event

BATCH = "batch-0001"
OTHER_MENTOR = "mentor-0002"
STRANGER = "user-with-no-batch"
REF = re.compile(f"[{REF_ALPHABET}]{{8}}")


async def click(call: Call, batch_id: str = BATCH, user: str = MENTOR) -> tuple[int, dict[str, Any]]:
    return await call("POST", "/v1/reports/course-progress", json={"batchId": batch_id}, user=user)


async def found(support_call: Call, **criteria: str) -> list[dict[str, Any]]:
    status, body = await support_call("GET", "/v1/support/jobs", params=criteria)
    assert status == 200, body
    return body["result"]["jobs"]


async def ready_job(call: Call, ws) -> str:
    """Clicks, and waits until the mentor's open socket hears the report is ready; returns the job's id."""
    _, answer = await click(call)
    await next_event(ws, "report.completed")
    return answer["result"]["jobId"]


def carries_no_link(answer: dict[str, Any]) -> bool:
    text = json.dumps(answer)
    return "downloadUrl" not in text and "/files/" not in text


@pytest.fixture
async def batches(source) -> list[str]:
    """Three more batches of MENTOR's and one of OTHER_MENTOR's, beside `batch-0001`."""
    made = [f"batch-00{n}" for n in (11, 12, 13)]
    for batch_id in made:
        await seed(source, 3, batch_id=batch_id, course_id="do_course_0001", mentor_id=MENTOR, progress=None)
    await seed(source, 3, batch_id="batch-0021", course_id="do_course_0002", mentor_id=OTHER_MENTOR, progress=None)
    await source.insert("users", ("user_id", "name"), [(MENTOR, "Asha Rao")])
    return made


async def test_every_event_and_the_job_view_carry_the_jobs_short_reference(
    call: Call, socket_url, http, worker
) -> None:
    async with http.ws_connect(await socket_url()) as ws:
        _, answer = await click(call)
        job_id = answer["result"]["jobId"]
        events = [await next_event(ws, kind) for kind in ("report.submitted", "report.completed")]
    _, view = await call("GET", f"/v1/reports/jobs/{job_id}")
    ref = view["result"]["ref"]
    assert REF.fullmatch(ref)
    assert [event["ref"] for event in events] == [ref, ref]


async def test_support_finds_a_job_by_reference_mentor_batch_and_day(
    call: Call, support_call: Call, batches: list[str]
) -> None:
    _, mine = await click(call, batches[0])
    _, theirs = await click(call, "batch-0021", user=OTHER_MENTOR)
    job_id = mine["result"]["jobId"]
    _, view = await call("GET", f"/v1/reports/jobs/{job_id}")
    ref = view["result"]["ref"]

    spoken = f"{ref[:4].lower()} {ref[4:]}"  # as a mentor reads it out and support types it
    assert [row["jobId"] for row in await found(support_call, ref=spoken)] == [job_id]
    assert [row["jobId"] for row in await found(support_call, userId=MENTOR)] == [job_id]
    assert [row["jobId"] for row in await found(support_call, batchId="batch-0021")] == [theirs["result"]["jobId"]]
    today = view["result"]["submittedAt"][:10]
    by_day = await found(support_call, **{"from": "2020-01-01", "to": "2099-12-31"})
    assert {row["jobId"] for row in by_day} == {job_id, theirs["result"]["jobId"]}
    assert await found(support_call, **{"from": "2020-01-01", "to": "2020-01-02"}) == []
    row = (await found(support_call, ref=ref))[0]
    assert row["batchId"] == batches[0] and row["mentorName"] == "Asha Rao" and row["courseName"]
    assert row["outcome"] == "Waiting for a worker" and row["submittedAt"][:10] == today


async def test_search_pages_newest_first_with_a_cursor(call: Call, support_call: Call, batches: list[str]) -> None:
    made = [(await click(call, batch_id))[1]["result"]["jobId"] for batch_id in [BATCH, *batches]]
    pages, cursor = [], None
    while True:
        params = {"userId": MENTOR, "limit": "3", **({"cursor": cursor} if cursor else {})}
        _, body = await support_call("GET", "/v1/support/jobs", params=params)
        pages.append([row["jobId"] for row in body["result"]["jobs"]])
        cursor = body["result"]["cursor"]
        if cursor is None:
            break
    assert [job for page in pages for job in page] == made[::-1]
    assert len(pages[0]) == 3


@pytest.mark.parametrize("env", [{"QUEUE_WAIT": "1", "SWEEP_INTERVAL": "0.2"}], indirect=True, ids=["no worker"])
async def test_search_by_status_and_reason_finds_a_job_no_worker_took(
    call: Call, support_call: Call, socket_url, http
) -> None:
    async with http.ws_connect(await socket_url()) as ws:
        _, answer = await click(call)
        await next_event(ws, "report.failed")
    job_id = answer["result"]["jobId"]
    rows = await found(support_call, status="FAILED", reason="NO_WORKER")
    assert [row["jobId"] for row in rows] == [job_id]
    assert rows[0]["outcome"].startswith("Failed: no report worker started it")
    assert await found(support_call, status="SUCCESS") == []


async def test_refused_clicks_are_shown_beside_the_mentors_jobs(call: Call, support_call: Call) -> None:
    assert (await click(call))[0] == 202
    assert (await click(call))[0] == 409
    assert (await click(call, user=STRANGER))[0] == 403
    _, mentor = await support_call("GET", "/v1/support/jobs", params={"userId": MENTOR})
    assert [(c["status"], c["batchId"], c["reason"]) for c in mentor["result"]["refused"]] == [
        (409, BATCH, "a report of the batch was already being made")
    ]
    _, stranger = await support_call("GET", "/v1/support/jobs", params={"userId": STRANGER})
    assert stranger["result"]["jobs"] == []
    assert [(c["code"], c["reason"]) for c in stranger["result"]["refused"]] == [
        ("NOT_A_MENTOR", "not a mentor or creator of the batch")
    ]


@pytest.mark.parametrize("env", [{"RATE_LIMIT": "1"}], indirect=True, ids=["one click a minute"])
async def test_a_click_over_the_budget_is_shown_as_too_many_requests(call: Call, support_call: Call) -> None:
    assert (await click(call))[0] == 202
    assert (await click(call, "batch-9999"))[0] == 429
    _, mentor = await support_call("GET", "/v1/support/jobs", params={"userId": MENTOR})
    assert [(c["status"], c["batchId"], c["reason"]) for c in mentor["result"]["refused"]] == [
        (429, "batch-9999", "too many requests in a minute")
    ]


async def test_the_job_page_shows_the_mentor_connected_and_which_events_reached_a_socket(
    call: Call, support_call: Call, socket_url, http, worker
) -> None:
    async with http.ws_connect(await socket_url()) as ws:
        job_id = await ready_job(call, ws)
        status, page = await support_call("GET", f"/v1/support/jobs/{job_id}")
    assert status == 200
    result = page["result"]
    assert result["connected"] is True and result["devices"] == 1
    told = {entry["type"]: entry for entry in result["timeline"]}
    assert told["report.submitted"]["delivered"] == 1 and told["report.completed"]["delivered"] == 1
    assert told["report.completed"]["words"] == "Report ready (120 rows); the mentor was sent a link"
    assert result["job"]["outcome"].startswith("Ready (120 rows")
    assert carries_no_link(page)


async def test_support_reads_a_completed_job_and_its_timeline_without_a_download_link(
    call: Call, support_call: Call, socket_url, http, worker
) -> None:
    async with http.ws_connect(await socket_url()) as ws:
        job_id = await ready_job(call, ws)
    _, mentor_view = await call("GET", f"/v1/reports/jobs/{job_id}")
    assert mentor_view["result"]["downloadUrl"]
    _, support_view = await support_call("GET", f"/v1/reports/jobs/{job_id}")
    assert support_view["result"]["status"] == "SUCCESS" and support_view["result"]["downloadUrl"] is None
    _, timeline = await support_call("GET", f"/v1/support/jobs/{job_id}/events")
    assert [e["type"] for e in timeline["result"]["events"]][-1] == "report.completed"
    assert carries_no_link(timeline)


async def test_replaying_a_completed_job_sends_the_mentor_a_fresh_link_and_support_none(
    call: Call, support_call: Call, socket_url, http, worker
) -> None:
    async with http.ws_connect(await socket_url()) as ws:
        await click(call)
        first = await next_event(ws, "report.completed")
        status, replayed = await support_call("POST", f"/v1/support/jobs/{first['jobId']}/replay")
        again = await next_event(ws, "report.completed")
    assert status == 200 and carries_no_link(replayed)
    assert again["replayed"] is True and again["expiresAt"] >= first["expiresAt"]
    async with http.get(again["downloadUrl"]) as response:
        assert response.status == 200


async def test_running_again_makes_a_new_job_as_the_mentor_and_their_open_page_hears_it(
    call: Call, support_call: Call, socket_url, http, worker
) -> None:
    async with http.ws_connect(await socket_url()) as ws:
        job_id = await ready_job(call, ws)
        status, rerun = await support_call("POST", f"/v1/support/jobs/{job_id}/rerun")
        assert status == 202
        new_job = rerun["result"]["jobId"]
        started = await next_event(ws, "report.submitted")
        ready = await next_event(ws, "report.completed")
    assert started["jobId"] == ready["jobId"] == new_job != job_id
    assert ready["ref"] == rerun["result"]["ref"]
    _, view = await call("GET", f"/v1/reports/jobs/{new_job}")
    assert view["result"]["requestedBy"] == MENTOR


async def test_running_again_while_the_mentor_has_one_running_is_refused_and_the_mentor_told(
    call: Call, support_call: Call, socket_url, http
) -> None:
    async with http.ws_connect(await socket_url()) as ws:
        _, answer = await click(call)
        status, refused = await support_call("POST", f"/v1/support/jobs/{answer['result']['jobId']}/rerun")
        duplicate = await next_event(ws, "report.duplicate")
    assert status == 409 and refused["params"]["err"] == "DOWNLOAD_IN_PROGRESS"
    assert duplicate["jobId"] == answer["result"]["jobId"]


async def test_the_audit_trail_shows_each_search_and_action_newest_first(
    call: Call, support_call: Call, socket_url, http, worker
) -> None:
    async with http.ws_connect(await socket_url()) as ws:
        job_id = await ready_job(call, ws)
    await found(support_call, userId=MENTOR)
    await support_call("GET", f"/v1/support/jobs/{job_id}")
    await support_call("POST", f"/v1/support/jobs/{job_id}/replay")
    await support_call("POST", f"/v1/support/jobs/{job_id}/rerun")
    _, audit = await support_call("GET", "/v1/support/audit", params={"limit": "3"})
    entries = audit["result"]["entries"]
    assert [e["action"] for e in entries] == ["rerun", "replay", "view"]
    assert {(e["actor"], e["userId"], e["jobId"]) for e in entries} == {(SUPPORT, MENTOR, job_id)}
    _, rest = await support_call("GET", "/v1/support/audit", params={"cursor": audit["result"]["cursor"]})
    assert [(e["action"], e["userId"]) for e in rest["result"]["entries"]] == [("search", MENTOR)]


async def test_a_mentor_cannot_search_read_or_act_as_support(call: Call) -> None:
    job = "a" * 32
    for method, path in [("GET", "/v1/support/jobs?userId=x"), ("GET", "/v1/support/audit"),
                         ("GET", f"/v1/support/jobs/{job}"), ("POST", f"/v1/support/jobs/{job}/rerun")]:  # fmt: skip
        status, body = await call(method, path)
        assert (status, body["params"]["err"]) == (403, "NOT_SUPPORT")


@pytest.mark.parametrize(
    "params",
    [{"ref": "ABC"}, {"ref": "IIIIOOOO"}, {"from": "yesterday"}, {"from": "2026-02-30"},
     {"from": "2026-11-25", "to": "2026-11-24"}, {"limit": "0"}, {"limit": "1e3"}, {"cursor": "x"},
     {"status": "DONE"}, {"reason": "no worker"}, {"batchId": "../x"}, {"colour": "red"}, {"to": "9999-12-31"},
     {"limit": "1" * 5000}],
)  # fmt: skip
async def test_a_search_with_bad_criteria_is_a_clear_400(support_call: Call, params: dict[str, str]) -> None:
    status, body = await support_call("GET", "/v1/support/jobs", params=params)
    assert status == 400, body
    assert body["params"]["status"] == "failed" and body["params"]["errmsg"]


async def test_a_search_over_thousands_of_jobs_in_many_batches_reads_only_the_jobs_its_index_names(
    hub, support_call: Call, redis
) -> None:
    services = hub.app[HUB]
    mentors, made = [f"mentor-{n:03d}" for n in range(41)], {}  # 41 and 400 batches: no pair twice
    for n in range(2_000):
        user, batch_id = mentors[n % len(mentors)], f"batch-{n % 400:04d}"
        submission = await services.jobs.submit(user, batch_id, "do_course_0001")
        assert submission.created
        await index_for_support(services, submission.job_id)
        made.setdefault(user, []).append(submission.job_id)
    await redis.config_resetstat()

    rows = await found(support_call, userId="mentor-007", limit="100")

    assert [row["jobId"] for row in rows] == made["mentor-007"][::-1]
    stats = await redis.info("commandstats")
    assert not {"cmdstat_scan", "cmdstat_keys"} & set(stats)
    assert stats["cmdstat_hgetall"]["calls"] == len(made["mentor-007"]), "each of the mentor's jobs read once"


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "9" * 5000}, {"cursor": "yesterday"}])
async def test_reading_the_audit_trail_with_bad_paging_is_a_clear_400(support_call: Call, params: dict) -> None:
    status, body = await support_call("GET", "/v1/support/audit", params=params)
    assert (status, body["params"]["err"]) == (400, "INVALID_REQUEST")
