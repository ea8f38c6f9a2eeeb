"""The mentor's language: each event carries a stable `messageKey`, and its `message` is in the language
the client asked for (`lang` on the ticket, stream or poll; else `Accept-Language`; else English), from a
catalogue in which a missing entry falls back to English, never to a key."""

from __future__ import annotations

import string

import pytest

from hub.events import MESSAGE_KEYS
from hub.i18n import CATALOGUE, ENGLISH, LANGUAGES, chosen
from tests.helpers import Call, next_event

BATCH = "batch-0001"
HINDI_STARTED = "आपका डाउनलोड शुरू हो गया है। आप ऐप का उपयोग जारी रख सकते हैं।"
TAMIL_IN_PROGRESS = CATALOGUE["ta"]["messages.imsg.m0040"]


async def click_twice(call: Call) -> None:
    """A report.submitted, then a report.duplicate."""
    for expected in (202, 409):
        assert (await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH}))[0] == expected


async def polled(call: Call, query: str = "", **headers: str) -> dict[str, dict]:
    _, body = await call("GET", f"/v1/notifications{query}", headers=headers)
    return {event["type"]: event for event in body["result"]["events"]}


async def test_every_event_for_people_carries_its_message_key(call: Call) -> None:
    await click_twice(call)
    events = await polled(call)
    assert events["report.submitted"]["messageKey"] == "hub.report.submitted"
    assert events["report.duplicate"]["messageKey"] == "messages.imsg.m0040"


async def test_a_poll_with_lang_reads_its_messages_in_that_language(call: Call) -> None:
    await click_twice(call)
    events = await polled(call, "?lang=hi")
    assert events["report.submitted"]["message"] == HINDI_STARTED
    assert events["report.duplicate"]["message"] == CATALOGUE["hi"]["messages.imsg.m0040"]


async def test_accept_language_chooses_when_lang_is_not_given_and_missing_texts_are_english(call: Call) -> None:
    await click_twice(call)
    events = await polled(call, **{"Accept-Language": "fr-FR, ta-IN;q=0.8, en;q=0.5"})
    assert events["report.duplicate"]["message"] == TAMIL_IN_PROGRESS
    assert events["report.submitted"]["message"] == "Your download has started. You can continue using the app."


async def test_an_unknown_lang_reads_english(call: Call) -> None:
    await click_twice(call)
    events = await polled(call, "?lang=xx-unknown")
    assert events["report.duplicate"]["message"] == "Download in-progress. Please try after sometime"


async def test_a_websocket_speaks_the_language_its_ticket_was_asked_in(call: Call, http, token) -> None:
    async with http.post("/v1/notifications/ticket?lang=hi", headers={"Authorization": f"Bearer {token()}"}) as r:
        ticket = (await r.json())["result"]["ticket"]
    async with http.ws_connect(f"/v1/notifications/ws?ticket={ticket}") as ws:
        await call("POST", "/v1/reports/course-progress", json={"batchId": BATCH})
        assert (await next_event(ws, "report.submitted"))["message"] == HINDI_STARTED


async def test_the_event_ids_stay_resumable_in_any_language(call: Call) -> None:
    await click_twice(call)
    english, hindi = await polled(call), await polled(call, "?lang=hi")
    assert [event["id"] for event in english.values()] == [event["id"] for event in hindi.values()]


def test_the_catalogue_has_each_of_dikshas_languages_and_english_and_hindi_complete() -> None:
    assert set(CATALOGUE) == set(LANGUAGES)
    assert set(CATALOGUE["hi"]) == set(CATALOGUE[ENGLISH])
    assert set(MESSAGE_KEYS.values()) <= set(CATALOGUE[ENGLISH])


@pytest.mark.parametrize("lang", LANGUAGES)
def test_a_language_holds_only_keys_english_has_with_the_same_placeholders(lang: str) -> None:
    def fields(text: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name}

    for key, text in CATALOGUE[lang].items():
        assert key in CATALOGUE[ENGLISH]
        assert text.strip() and fields(text) == fields(CATALOGUE[ENGLISH][key])


@pytest.mark.parametrize(
    ("lang", "accept_language", "expected"),
    [("hi-IN", None, "hi"), ("HI", "ta", "hi"), (None, "mr;q=0.2, or;q=0.9", "or"), (None, "en-GB", "en"),
     (None, "ta;q=0", "en"), (None, "ta;q=zero, bn", "bn"), ("x" * 10_000, None, "en"), (None, None, "en")],
)  # fmt: skip
def test_the_language_is_lang_else_the_best_accepted_one_else_english(lang, accept_language, expected) -> None:
    assert chosen(lang, accept_language) == expected


async def test_the_page_labels_come_from_the_catalogue_in_the_browsers_language(http) -> None:
    async with http.get("/", headers={"Accept-Language": "hi-IN,hi;q=0.9,en;q=0.8"}) as response:
        page = await response.text()
        assert (response.headers["Content-Language"], response.headers["Vary"]) == ("hi", "Accept-Language")
    assert '<html lang="hi">' in page
    assert f'data-i18n="page.downloadReport">{CATALOGUE["hi"]["page.downloadReport"]}</button>' in page


async def test_a_page_in_a_language_without_its_labels_shows_english_ones(http) -> None:
    async with http.get("/?lang=ta") as response:
        page = await response.text()
    assert '<html lang="ta">' in page and 'data-i18n="page.downloadReport">Download report</button>' in page
