"""Everything the hub serves carries the headers that keep its page from running injected script, being
framed by a site that is not the portal, being sniffed as another type, or leaking a URL in a Referer."""

from __future__ import annotations

from html.parser import HTMLParser
from importlib.resources import files

import aiohttp
import pytest

PATHS = ["/", "/web/app.js", "/web/style.css", "/v1/mentor/batches", "/v1/nothing-here", "/nothing-here",
         "/healthz", "/metrics", f"/files/{'0a' * 16}"]  # fmt: skip


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "ALLOWED_ORIGINS": "https://diksha.gov.in"}


@pytest.mark.parametrize("path", PATHS)
async def test_every_answer_carries_the_security_headers(http: aiohttp.ClientSession, token, path: str) -> None:
    async with http.get(path, headers={"Authorization": f"Bearer {token()}"}) as response:
        headers = response.headers
    policy = dict(part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";"))
    assert policy["script-src"] == "'self'"
    assert policy["frame-ancestors"] == "'self' https://diksha.gov.in"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Content-Type-Options"] == "nosniff"


class InlineCode(HTMLParser):
    """Collects what a `script-src 'self'` policy would block: inline scripts and event handlers. A JSON
    data block (`<script type="application/json">`) is never run, so the policy lets the page read it."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        self.found += [f"<{tag} {name}>" for name in names if name.startswith("on") or name == "style"]
        code = tag == "script" and names.get("type") != "application/json"
        if code and not names.get("src"):
            self.found.append("<script> without src")
        self._in_script = code

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.found.append("script text")


def test_the_page_has_no_inline_script_or_style() -> None:
    parser = InlineCode()
    parser.feed((files("hub.web") / "index.html").read_text())
    assert parser.found == []


async def test_the_page_served_in_a_language_with_its_labels_has_no_inline_script(http: aiohttp.ClientSession) -> None:
    async with http.get("/?lang=hi") as response:
        parser = InlineCode()
        parser.feed(await response.text())
    assert parser.found == []
