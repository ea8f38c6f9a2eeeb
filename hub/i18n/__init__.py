"""The mentor's language: every message a person reads, by a stable key, in DIKSHA's twelve languages.

The catalogue is one JSON file a language (`en.json`, `hi.json`, ...) beside this module, read once at
import. Keys the portal already has (`messages.imsg.m0045`, `m0040`) keep the portal's key and its own
translations, so a mentor reads the same words in the hub's toasts and the portal's; the hub's own keys
start `hub.`. English is complete and is what any missing entry falls back to: a key never reaches a
screen. Events are stored once, in English with their `messageKey`, and put in the reader's language as
they are sent (`localize`), so one event serves mentors of every language.
"""

from __future__ import annotations

import html
import json
import re
from importlib import resources

import orjson

# DIKSHA's portal and app languages.
LANGUAGES = ("as", "bn", "en", "gu", "hi", "kn", "mr", "or", "pa", "ta", "te", "ur")
ENGLISH = "en"
MAX_LANG_LENGTH = 64
MAX_ACCEPT_LANGUAGE_LENGTH = 512


def _read() -> dict[str, dict[str, str]]:
    folder = resources.files(__package__)
    return {
        lang: {
            key: text for key, text in json.loads((folder / f"{lang}.json").read_text("utf-8")).items() if key[0] != "_"
        }
        for lang in LANGUAGES
    }


CATALOGUE = _read()


def text(key: str, lang: str = ENGLISH) -> str:
    """The message in `lang`, else in English."""
    return CATALOGUE.get(lang, {}).get(key) or CATALOGUE[ENGLISH][key]


def _known(tag: str) -> str | None:
    """`hi`, `hi-IN` and `HI_in` are all Hindi; a language DIKSHA does not ship is None."""
    primary = tag.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary if primary in LANGUAGES else None


def _preferred(accept_language: str) -> str | None:
    """The first of DIKSHA's languages in an `Accept-Language` list, by `q` (RFC 9110 12.5.4)."""
    ranked = []
    for position, item in enumerate(accept_language[:MAX_ACCEPT_LANGUAGE_LENGTH].split(",")):
        tag, _, params = item.partition(";")
        weight = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                weight = float(value)
            except ValueError:
                continue
        lang = _known(tag)
        if lang and weight > 0:
            ranked.append((-weight, position, lang))
    return min(ranked)[2] if ranked else None


def chosen(lang: str | None, accept_language: str | None) -> str:
    """The `lang` asked for, else the browser's `Accept-Language`, else English: an unknown one is never an
    error, the next choice simply applies."""
    return _known((lang or "")[:MAX_LANG_LENGTH]) or _preferred(accept_language or "") or ENGLISH


def localize(frame: str, lang: str) -> str:
    """A stored event frame (English) with its `message` in `lang`; the frame's `id` stays first."""
    if lang == ENGLISH or '"messageKey"' not in frame:
        return frame
    event = orjson.loads(frame)
    event["message"] = text(event["messageKey"], lang)
    return orjson.dumps(event).decode()


# An element of the page whose text is a catalogue entry: `<tag ... data-i18n="key">text</tag>`.
LABEL = re.compile(r'(<(\w+)\b[^>]*\sdata-i18n="([^"]+)"[^>]*>)([^<]*)(</\2>)')


def page_in(html_text: str, lang: str) -> str:
    """The page with its labels in `lang`: its labels come from the same catalogue as the events' messages."""

    def label(match: re.Match[str]) -> str:
        return match[1] + html.escape(text(match[3], lang), quote=False) + match[5]

    return LABEL.sub(label, html_text).replace('<html lang="en">', f'<html lang="{lang}">', 1)
