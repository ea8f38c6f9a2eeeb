"""A stand-in for a Redis older than the hub needs (6.2): it answers PING and INFO as that server does,
and OK to the set-up commands a client sends, which is all a process meets before it checks the version.
No Redis 6 can be installed beside Valkey here, and only its version is under test."""

from __future__ import annotations

import contextlib
import socketserver
import threading
from collections.abc import Iterator

VERSION = "6.2.14"


class _Answer(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        while header := self.rfile.readline():
            if not header.startswith(b"*"):
                return
            words = []
            for _ in range(int(header[1:])):
                size = int(self.rfile.readline()[1:])
                words.append(self.rfile.read(size + 2)[:-2].decode().upper())
            if words[0] == "PING":
                self.wfile.write(b"+PONG\r\n")
            elif words[0] == "INFO":
                info = f"# Server\r\nredis_version:{VERSION}\r\nredis_mode:standalone\r\n".encode()
                self.wfile.write(b"$%d\r\n%s\r\n" % (len(info), info))
            else:
                self.wfile.write(b"+OK\r\n")


@contextlib.contextmanager
def old_redis() -> Iterator[str]:
    """The URL of a Redis 6.2 stand-in, served from a thread while the block runs."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Answer)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{server.server_address[1]}/0"
    finally:
        server.shutdown()
        server.server_close()
