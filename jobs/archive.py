"""A password-protected report: the CSV streamed into an encrypted ZIP as it is made.

libarchive (through libarchive-c) writes the ZIP: it deflates and encrypts in C, with ZipCrypto (what
Sunbird uses, and what Windows and macOS open without extra software) or AES-256, and it writes an entry
whose size is not known in advance, with the sizes and CRC after the data. So the CSV never has to be
whole anywhere: each chunk goes in, its encrypted bytes come out and go on to the upload. stream-zip
streams too, but writes only AES.
"""

from __future__ import annotations

import asyncio
import ctypes
import stat
import time
from collections.abc import AsyncIterator

from libarchive import ffi
from libarchive.entry import ArchiveEntry


def _writer(password: str, cipher: str, collect: ffi.WRITE_CALLBACK) -> ctypes.c_void_p:
    archive = ffi.write_new()
    try:
        ffi.get_write_format_function("zip")(archive)
        ffi.write_set_options(archive, f"zip:encryption={cipher}".encode())
        ffi.write_set_passphrase(archive, password.encode())
        ffi.write_set_bytes_in_last_block(archive, 1)
        ffi.write_open(archive, None, ffi.NO_OPEN_CB, collect, ffi.NO_CLOSE_CB)
    except BaseException:
        ffi.write_free(archive)
        raise
    return archive


async def encrypted_zip(chunks: AsyncIterator[bytes], name: str, password: str, cipher: str) -> AsyncIterator[bytes]:
    """The ZIP holding one file `name` made of `chunks`, encrypted with `password`. Deflating and encrypting
    run in a thread, so the worker's event loop (heartbeats, progress) keeps going meanwhile."""
    out: list[bytes] = []

    def collect(_archive: object, _context: object, buffer: int, length: int) -> int:
        out.append(ctypes.string_at(buffer, length))
        return length

    callback = ffi.WRITE_CALLBACK(collect)  # kept referenced: libarchive calls it until the archive is freed
    archive = _writer(password, cipher, callback)
    closed = False
    try:
        entry = ArchiveEntry(pathname=name, size=0, filetype=stat.S_IFREG, perm=0o644, mtime=time.time())
        ffi.entry_unset_size(entry._entry_p)  # sizes after the data: the CSV is still being made
        ffi.write_header(archive, entry._entry_p)
        async for chunk in chunks:
            await asyncio.to_thread(ffi.write_data, archive, chunk, len(chunk))
            if out:
                yield b"".join(out)
                out.clear()
        ffi.write_finish_entry(archive)
        ffi.write_close(archive)
        closed = True
        yield b"".join(out)
    finally:
        if not closed:
            ffi.write_fail(archive)
        ffi.write_free(archive)
