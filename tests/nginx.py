"""Debian's nginx (`nginx-light`), run unprivileged in a folder of its own, in front of a hub: the config
is the operator's file from deploy/sunbird/nginx/ included as it is, inside a server block, with the
upstream pointed at the test's hub."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from hub.embedded import free_port

LOCATIONS = Path(__file__).parent.parent / "deploy" / "sunbird" / "nginx" / "report-hub-locations.conf"
CONF = """
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream course_report_hub {{ server 127.0.0.1:{hub_port}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port};
        include {locations};
    }}
}}
"""


def write_conf(folder: Path, hub_port: int, port: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "nginx.conf"
    conf.write_text(CONF.format(dir=folder, hub_port=hub_port, port=port, locations=LOCATIONS))
    return conf


@contextlib.asynccontextmanager
async def nginx_in_front(hub_port: int, folder: Path) -> AsyncIterator[str]:
    """nginx serving the hub's locations; yields its base URL once it accepts connections."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    conf = write_conf(folder, hub_port, port)
    process = await asyncio.create_subprocess_exec(
        binary, "-p", str(folder), "-c", str(conf), "-g", "daemon off;", stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(10):
            while True:
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    break
                if process.returncode is not None:
                    raise RuntimeError(f"nginx stopped: {(await process.stderr.read()).decode()}")
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        await process.wait()
