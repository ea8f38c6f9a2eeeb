"""The Lua scripts in `hub/lua/`, read once at import. Each begins by naming its KEYS and ARGV, and every
key it touches is passed in KEYS, so the scripts could run on a Redis Cluster.

Each script is given, ahead of its own text, the job statuses under the names the Python uses
(`Status`), `now_ms()` (Redis's clock) and `emit()` (store and publish an event).
"""

from __future__ import annotations

from importlib.resources import files

from hub.job import Status

_LUA = files("hub") / "lua"
_PRELUDE = (
    "".join(f"local {status.name} = '{status.value}'\n" for status in Status)
    + (_LUA / "clock.lua").read_text()
    + (_LUA / "emit.lua").read_text()
)


def _script(name: str) -> str:
    return _PRELUDE + (_LUA / f"{name}.lua").read_text()


SUBMIT = _script("submit")
TRANSITION = _script("transition")
DUPLICATE = _script("duplicate")
EVENT = _script("event")
WORKERS = _script("workers")
NOW = _script("now")
# Changes no job and emits no event: read as it is.
CONNECTION = (_LUA / "connection.lua").read_text()
RELEASE = (_LUA / "release.lua").read_text()
