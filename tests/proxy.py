"""A loopback TCP proxy in front of Redis that interferes with chosen commands the way a network and a
failover do: it forwards a command and drops the connection before relaying its reply (redis-py then sends
it again, so it runs twice), or it answers a command with an error without forwarding it. Everything else
is carried as it is.

Commands are recognised by parsing the client's RESP arrays, so a rule names what it wants by content
(`script_call(b'"report.completed"')`), not by byte offsets.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

Command = list[bytes]
Match = Callable[[Command], bool]


def script_call(marker: bytes) -> Match:
    """An EVAL or EVALSHA one of whose arguments holds `marker` (an event type, a status)."""
    return lambda command: command[0].upper() in (b"EVAL", b"EVALSHA") and any(marker in arg for arg in command[1:])


@dataclass
class Rule:
    match: Match
    times: int
    error: bytes | None  # None: forward, then drop the connection before the reply


@dataclass(eq=False)
class Link:
    """One client connection and its own connection to Redis."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    dropping: Rule | None = None  # the rule whose command was forwarded, its reply awaited


class Proxy:
    def __init__(self, redis_url: str) -> None:
        target = urlsplit(redis_url)
        self._target = (target.hostname or "127.0.0.1", target.port or 6379)
        self._path = target.path
        self._rules: list[Rule] = []
        self._links: set[Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.dropped = 0  # commands that ran and whose reply was dropped
        self.refused = 0  # commands answered with an error instead

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._carry, "127.0.0.1", 0)
        self.port: int = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}{self._path}"

    def drop_reply(self, match: Match, times: int = 1) -> None:
        """The next `times` commands that `match` run, and their connection is dropped before the reply."""
        self._rules.append(Rule(match, times, None))

    def refuse(self, match: Match, error: bytes = b"ERR refused by the test proxy", times: int = 1_000_000) -> None:
        """Commands that `match` are answered with `error` and never reach Redis."""
        self._rules.append(Rule(match, times, error))

    def _rule_for(self, command: Command) -> Rule | None:
        for rule in self._rules:
            if rule.times > 0 and rule.match(command):
                rule.times -= 1
                return rule
        return None

    async def _carry(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        link = Link(writer, upstream_writer)
        self._links.add(link)
        replies = asyncio.create_task(self._relay_replies(upstream_reader, link))
        self._tasks.add(replies)
        replies.add_done_callback(self._tasks.discard)
        buffer = bytearray()
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                buffer += data
                while (parsed := _command(buffer)) is not None:
                    command, size = parsed
                    raw = bytes(buffer[:size])
                    del buffer[:size]
                    rule = self._rule_for(command)
                    if rule is not None and rule.error is not None:
                        self.refused += 1
                        writer.write(b"-" + rule.error + b"\r\n")
                        continue
                    link.dropping = rule
                    upstream_writer.write(raw)
                await upstream_writer.drain()
        self._close(link)

    async def _relay_replies(self, upstream: asyncio.StreamReader, link: Link) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await upstream.read(65536):
                if link.dropping and data.startswith(b"-NOSCRIPT"):  # it did not run: the rule waits for the next
                    link.dropping.times += 1
                    link.dropping = None
                elif link.dropping:
                    self.dropped += 1
                    break
                link.client.write(data)
                await link.client.drain()
        self._close(link)

    def _close(self, link: Link) -> None:
        link.client.close()
        link.upstream.close()
        self._links.discard(link)

    async def close(self) -> None:
        for link in list(self._links):
            self._close(link)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def _command(buffer: bytearray) -> tuple[Command, int] | None:
    """The first whole command in `buffer` (a RESP array of bulk strings) and its length; None until it
    has all arrived."""
    end = buffer.find(b"\r\n")
    if end < 0:
        return None
    count, position, command = int(buffer[1:end]), end + 2, []
    for _ in range(count):
        end = buffer.find(b"\r\n", position)
        if end < 0:
            return None
        start = end + 2
        stop = start + int(buffer[position + 1 : end])
        if len(buffer) < stop + 2:
            return None
        command.append(bytes(buffer[start:stop]))
        position = stop + 2
    return command, position
