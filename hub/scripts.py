"""The Lua scripts in `hub/lua/`, read once at import. Each begins by naming its KEYS and ARGV, and every
key it touches is passed in KEYS, so the scripts could run on a Redis Cluster.

Each script is given, ahead of its own text, the job statuses under the names the Python uses
(`Status`) and the `emit` function that stores and publishes an event.
"""

from __future__ import annotations

from importlib.resources import files

from hub.job import Status

_LUA = files("hub") / "lua"
_STATUSES = "".join(f"local {status.name} = '{status.value}'\n" for status in Status)
_EMIT = (_LUA / "emit.lua").read_text()


def _script(name: str) -> str:
    return _STATUSES + _EMIT + (_LUA / f"{name}.lua").read_text()


SUBMIT = _script("submit")
TRANSITION = _script("transition")
EVENT = _script("event")
# Changes no job and emits no event: read as it is.
CONNECTION = (_LUA / "connection.lua").read_text()
