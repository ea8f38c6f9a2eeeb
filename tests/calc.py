"""LibreOffice Calc as a person's spreadsheet: converts a file under a profile of its own, set to a
locale (en-US reads 8/17/2026 where en-IN reads 17/08/2026), and returns what it wrote."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

# Calc's CSV export: comma, double quote, UTF-8, from line 1 (cells as they are shown).
CSV_EXPORT = "csv:Text - txt - csv (StarCalc):44,34,76,1"
PROFILE = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Setup/L10N"><prop oor:name="ooSetupSystemLocale" oor:op="fuse">
<value>{locale}</value></prop></item>
</oor:items>
"""


async def convert(source: Path, to: str, locale: str, folder: Path, *options: str) -> Path:
    """`source` converted by Calc to `to` (an extension, or `ext:filter:options`) in `folder`."""
    soffice = shutil.which("soffice")
    assert soffice, "LibreOffice is needed: apt-get install libreoffice-calc-nogui (.ci/run does)"
    profile = folder / "profile"
    (profile / "user").mkdir(parents=True, exist_ok=True)
    (profile / "user" / "registrymodifications.xcu").write_text(PROFILE.format(locale=locale))
    process = await asyncio.create_subprocess_exec(
        soffice, f"-env:UserInstallation=file://{profile}", "--headless", *options,
        "--convert-to", to, "--outdir", str(folder), str(source),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(90):
        output, _ = await process.communicate()
    converted = folder / f"{source.stem}.{to.split(':')[0]}"
    assert converted.exists(), output.decode()
    return converted
