"""Where part writers spool a report's parts, and the clean-up after a worker that was killed.

A worker keeps its spool in a folder of its own in the temp directory, `report-parts-XXXX`, beside a
lock file `report-parts-XXXX.lock` that it holds (`flock`) for as long as it lives. The kernel drops the
lock when the process dies, however it dies (SIGKILL, the OOM killer), so a starting worker removes
every spool whose lock nobody holds: what a killed worker left, never a live neighbour's on the same
machine. The lock is taken under a hidden name and then renamed, so no one can find it unheld; it
exists before its folder and outlives it, so a folder without one was abandoned.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
PREFIX = "report-parts-"
LOCK = ".lock"


@dataclass
class Tally:
    """A report's rows: how many the batch had when counted, and how many the parts wrote."""

    total: int
    rows: int = 0


@dataclass(frozen=True)
class Written:
    """What a part writer left in its spool file: its rows and, for a spreadsheet part, the CRC-32 and
    length of the XML it deflated (the ZIP's data descriptor needs them, and only the writer saw it)."""

    rows: int
    crc: int = 0
    size: int = 0


class Spool:
    """This worker's spool folder; each report gets a folder inside it."""

    def __init__(self, base: Path | None = None) -> None:
        base = Path(base or tempfile.gettempdir())
        handle, staged = tempfile.mkstemp(prefix=f".{PREFIX}", suffix=LOCK, dir=base)
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._handle = handle
        self.lock = base / Path(staged).name.removeprefix(".")
        os.rename(staged, self.lock)
        self.folder = self.lock.with_suffix("")
        self.folder.mkdir()

    def report_folder(self) -> Path:
        return Path(tempfile.mkdtemp(dir=self.folder))

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.lock.unlink(missing_ok=True)
        os.close(self._handle)


def _unheld(lock: Path) -> int | None:
    """An open handle on `lock` holding it, or None when a live worker holds it (or it is gone)."""
    try:
        handle = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(handle)
        return None
    return handle


def remove_abandoned(base: Path | None = None) -> list[Path]:
    """Removes the spools of workers that are gone; returns the folders removed."""
    base = Path(base or tempfile.gettempdir())
    removed = []
    for lock in base.glob(f"{PREFIX}*{LOCK}"):
        handle = _unheld(lock)
        if handle is None:
            continue
        try:
            shutil.rmtree(lock.with_suffix(""), ignore_errors=True)
            lock.unlink(missing_ok=True)
            removed.append(lock.with_suffix(""))
        finally:
            os.close(handle)
    for folder in base.glob(f"{PREFIX}*"):
        if folder.is_dir() and not folder.with_suffix(LOCK).exists():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    if removed:
        log.info("removed %d spool folders left by stopped workers", len(removed))
    return removed
