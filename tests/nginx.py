"""Debian's nginx (`nginx-light`), run unprivileged in a folder of its own, in front of a hub: the config
is the operator's file from deploy/sunbird/nginx/ included as it is, inside a server block, with the
upstream pointed at the test's hub. With `portal`, the same host also stands in for the portal: its pages
under /portal/ and its proxy at /report-hub-api/, which, as the portal's Express
proxy does from its session, adds the user's token (here from a `session_token` cookie) and puts its own
key in `Authorization`."""

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
        {portal}
    }}
}}
"""
PORTAL = """
        location = /portal/ {{ default_type text/html; return 200 '{page}'; }}
        location /report-hub-api/ {{
            rewrite ^/report-hub-api/(.*) /$1 break;
            proxy_pass http://course_report_hub;
            proxy_set_header x-authenticated-user-token $cookie_session_token;
            proxy_set_header Authorization "Bearer portal-kong-consumer-key";
        }}
"""


# A portal page with the hub's client as the portal would load it: calls to its proxy, the socket straight
# to the hub (through nginx), messages in Hindi. No `$` or `'` in it: nginx reads it as a quoted string.
PORTAL_PAGE = """<!doctype html><meta charset="utf-8"><title>portal</title><script type="module">
import { HubClient } from "/report-hub/web/hub-client.js";
window.heard = [];
window.client = new HubClient({ baseUrl: "/report-hub-api", streamUrl: "/report-hub", userId: "mentor-0001",
                                lang: "hi", transports: ["ws"] });
window.client.addEventListener("event", (event) => window.heard.push(event.detail));
window.client.start();
</script>"""


def write_conf(folder: Path, hub_port: int, port: int, portal: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "nginx.conf"
    stand_in = PORTAL.format(page=PORTAL_PAGE) if portal else ""
    conf.write_text(CONF.format(dir=folder, hub_port=hub_port, port=port, locations=LOCATIONS, portal=stand_in))
    return conf


@contextlib.asynccontextmanager
async def nginx_in_front(hub_port: int, folder: Path, portal: bool = False) -> AsyncIterator[str]:
    """nginx serving the hub's locations; yields its base URL once it accepts connections."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    conf = write_conf(folder, hub_port, port, portal)
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
