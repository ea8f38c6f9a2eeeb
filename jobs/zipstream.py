"""A ZIP written front to back as it streams, for the workbook (`jobs/xlsx.py`).

An entry whose bytes are still being made (a worksheet) gets a local header without sizes and a data
descriptor after its data, as streaming writers do; its CRC-32 is joined from the CRCs its part
writers computed (`crc32_combine`), so no process ever holds or re-reads the whole entry. Small entries
known in advance are deflated whole. The central directory closes the stream. Sizes and offsets are the
classic 32-bit ones: a worksheet of a million rows is about 1 GB of XML, a quarter of the limit, and a
file that would pass it fails rather than come out broken.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct
import time
import zlib
from dataclasses import dataclass

LOCAL = struct.Struct("<IHHHHHIIIHH")
DESCRIPTOR = struct.Struct("<IIII")
CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
END = struct.Struct("<IHHHHIIH")
VERSION = 20
DEFLATE = 8
STREAMED = 0x08  # sizes and CRC follow the data, in a data descriptor
LIMIT = 0xFFFFFFFF
_zlib = ctypes.CDLL(ctypes.util.find_library("z") or "libz.so.1")
_zlib.crc32_combine.argtypes = [ctypes.c_ulong, ctypes.c_ulong, ctypes.c_long]
_zlib.crc32_combine.restype = ctypes.c_ulong


class TooLarge(Exception):
    """The file would pass the classic ZIP's 4 GiB limits."""


def crc32_combine(first: int, second: int, second_length: int) -> int:
    """The CRC-32 of two byte strings one after the other, from their CRCs (zlib's own routine)."""
    return int(_zlib.crc32_combine(first, second, second_length))


def _dos_time(now: float) -> tuple[int, int]:
    t = time.localtime(now)
    return (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2), ((t.tm_year - 1980) << 9) | (
        t.tm_mon << 5
    ) | t.tm_mday


@dataclass
class _Entry:
    name: bytes
    offset: int
    flags: int
    crc: int = 0
    compressed: int = 0
    size: int = 0


class ZipStream:
    """Hands out the ZIP's bytes in order; every byte of an entry's data goes through `data`."""

    def __init__(self) -> None:
        self._time, self._date = _dos_time(time.time())
        self._entries: list[_Entry] = []
        self._offset = 0

    def _out(self, data: bytes) -> bytes:
        self._offset += len(data)
        if self._offset > LIMIT:
            raise TooLarge("the file passes the 4 GiB a ZIP without ZIP64 holds")
        return data

    def _header(self, entry: _Entry) -> bytes:
        fields = (0x04034B50, VERSION, entry.flags, DEFLATE, self._time, self._date)
        return self._out(LOCAL.pack(*fields, entry.crc, entry.compressed, entry.size, len(entry.name), 0) + entry.name)

    def whole(self, name: str, content: bytes) -> bytes:
        """A small entry known in advance, deflated whole."""
        deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
        data = deflate.compress(content) + deflate.flush()
        entry = _Entry(name.encode(), self._offset, 0, zlib.crc32(content), len(data), len(content))
        self._entries.append(entry)
        return self._header(entry) + self._out(data)

    def begin(self, name: str) -> bytes:
        """Opens an entry whose raw-deflate data follows through `data`, closed by `end`."""
        entry = _Entry(name.encode(), self._offset, STREAMED)
        self._entries.append(entry)
        return self._header(entry)

    def data(self, chunk: bytes) -> bytes:
        self._entries[-1].compressed += len(chunk)
        return self._out(chunk)

    def end(self, crc: int, size: int) -> bytes:
        """The data descriptor: the open entry's CRC-32 and uncompressed size."""
        if size > LIMIT:
            raise TooLarge("a worksheet passes the 4 GiB a ZIP entry without ZIP64 holds")
        entry = self._entries[-1]
        entry.crc, entry.size = crc, size
        return self._out(DESCRIPTOR.pack(0x08074B50, crc, entry.compressed, size))

    def directory(self) -> bytes:
        start = self._offset
        records = b"".join(
            CENTRAL.pack(
                0x02014B50, VERSION, VERSION, e.flags, DEFLATE, self._time, self._date, e.crc, e.compressed,
                e.size, len(e.name), 0, 0, 0, 0, 0, e.offset,
            ) + e.name
            for e in self._entries
        )  # fmt: skip
        count = len(self._entries)
        return self._out(records) + END.pack(0x06054B50, 0, 0, count, count, len(records), start, 0)
