"""What must never reach a log line or an error message: the password of a URL (`postgresql://hub:pw@`),
an access token, a socket ticket or a link signature. The hub does not log these to begin with; this is
the last filter before text leaves the process (start-up errors, every log line, tracebacks included)."""

from __future__ import annotations

import re

# `scheme://user:password@host` -> `scheme://user:***@host` (a lone `user@` may be a token too: hidden).
USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/\s:@]*)(?::[^/\s@]*)?@")
SECRET_PARAMS = re.compile(r"(?P<name>[?&](?:sig|ticket|token|access_token)=)[^&\s#'\"]+", re.IGNORECASE)
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")


def redact(text: str) -> str:
    text = USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@" if m["user"] else f"{m['scheme']}***@", text)
    text = SECRET_PARAMS.sub(r"\g<name>***", text)
    return JWT.sub("<token>", text)
