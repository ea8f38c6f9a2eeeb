"""The `hub` command as an operator meets it: one line naming a bad setting, JSON from seed, tokens."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import jwt
import orjson
import pytest

from hub.config import DEV_JWT_SECRET
from hub.identity import TokenVerifier
from tests.helpers import LINK_SECRET, SECRET
from tests.old_redis import VERSION, old_redis


def hub(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub", *args], env={**os.environ, **(env or {})}, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("PORT", "80a"),
        ("SOURCE_URL", "mysql://nope"),
        ("STORAGE_URL", "ftp://files"),
        ("REDIS_URL", "http://localhost"),
        ("LINK_TTL", "0"),
        ("PUBLIC_URL", "hub.example.org"),
        ("ALLOWED_ORIGINS", "https://portal.example.org,portal.example.org"),
        ("TELEMETRY_PATH", "/proc/no-such-folder/telemetry.jsonl"),
        ("SWEEP_INTERVAL", "0"),
        ("HEARTBEAT_INTERVAL", "soon"),
        ("METRICS_PORT", "91a"),
        ("METRICS_PORT", "8080"),  # the public PORT's default
    ],
)
def test_a_wrong_setting_stops_serve_with_one_line_naming_it(setting: str, value: str, redis_server: str) -> None:
    done = hub("serve", env={"REDIS_URL": redis_server, "JWT_SECRET": SECRET, "LINK_SECRET": LINK_SECRET,
                             setting: value})  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert setting in lines[0]


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_redis_older_than_7_stops_serve_and_worker_with_one_line(command: str, tmp_path: Path) -> None:
    with old_redis() as url:
        done = hub(command, env={"REDIS_URL": url, "JWT_SECRET": SECRET, "LINK_SECRET": LINK_SECRET,
                                 "SOURCE_URL": f"sqlite:///{tmp_path / 'hub.db'}"})  # fmt: skip
    assert done.returncode == 2
    # The worker's log lines (JSON) come first; the stop is one line of its own.
    assert done.stderr.strip().splitlines()[-1] == (
        f"hub {command}: REDIS_URL names Redis {VERSION}; the hub needs Redis 7.0 or newer (or Valkey)"
    )


def test_serve_without_a_way_to_verify_tokens_refuses_to_start(redis_server: str) -> None:
    done = hub("serve", env={"REDIS_URL": redis_server, "JWT_SECRET": "", "JWT_PUBLIC_KEY": "", "JWT_JWKS": ""})
    assert done.returncode == 2
    assert "JWT_SECRET" in done.stderr


def test_serve_refuses_the_development_secret(redis_server: str) -> None:
    done = hub("serve", env={"REDIS_URL": redis_server, "JWT_SECRET": DEV_JWT_SECRET, "LINK_SECRET": LINK_SECRET})
    assert done.returncode == 2
    assert "development secret" in done.stderr


@pytest.mark.parametrize(
    ("command", "link_secret", "says"),
    [
        ("serve", "", "LINK_SECRET must be set"),
        ("worker", "", "LINK_SECRET must be set"),
        ("serve", SECRET, "LINK_SECRET must differ from JWT_SECRET"),
        ("worker", SECRET, "LINK_SECRET must differ from JWT_SECRET"),
    ],
)
def test_download_links_need_a_key_of_their_own(command: str, link_secret: str, says: str, redis_server: str) -> None:
    """No fallback to JWT_SECRET: a worker must never hold a key that signs tokens."""
    done = hub(command, env={"REDIS_URL": redis_server, "JWT_SECRET": SECRET, "LINK_SECRET": link_secret})
    assert done.returncode == 2
    assert says in done.stderr


def test_a_worker_whose_source_cannot_be_read_stops_with_one_line(redis_server: str, tmp_path: Path) -> None:
    done = hub(
        "worker",
        env={"REDIS_URL": redis_server, "LINK_SECRET": LINK_SECRET, "SOURCE_URL": f"sqlite:///{tmp_path / 'none.db'}"},
    )
    assert done.returncode == 2
    assert "SOURCE_URL" in done.stderr.strip().splitlines()[-1]


def test_seed_prints_one_json_line_and_shows_progress(tmp_path: Path) -> None:
    done = hub("seed", "--participants", "250", "--mentor", "m-1", env={"SOURCE_URL": f"sqlite:///{tmp_path / 's.db'}"})
    assert done.returncode == 0
    summary = orjson.loads(done.stdout)
    assert summary["participants"] == 250
    assert summary["mentorId"] == "m-1"
    assert set(summary) == {"courseId", "batchId", "mentorId", "participants"}
    assert "250/250" in done.stderr


def test_token_mints_a_development_token_the_hub_accepts() -> None:
    done = hub("token", "user-42", "--role", "SUPPORT", "--ttl", "120", env={"JWT_SECRET": SECRET})
    token = done.stdout.strip()
    from hub.config import load

    who = asyncio.run(TokenVerifier(load({"JWT_SECRET": SECRET})).verify(token))
    assert who.user_id == "user-42"
    assert who.roles == {"SUPPORT"}
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 120


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_an_unreachable_redis_stops_the_process_with_one_line(command: str) -> None:
    done = hub(command, env={"REDIS_URL": "redis://127.0.0.1:1/0", "JWT_SECRET": SECRET, "LINK_SECRET": LINK_SECRET})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert "REDIS_URL" in lines[-1]
    assert not any("Traceback" in line for line in lines)


@pytest.mark.parametrize("setting", ["JWT_PUBLIC_KEY", "JWT_JWKS"])
def test_a_key_file_that_does_not_parse_stops_serve(setting: str, tmp_path: Path, redis_server: str) -> None:
    (tmp_path / "key").write_text("not a key")
    done = hub("serve", env={"REDIS_URL": redis_server, setting: str(tmp_path / "key"), "LINK_SECRET": SECRET})
    assert done.returncode == 2
    assert setting in done.stderr


async def test_a_port_in_use_stops_serve_with_one_line_naming_it(env: dict[str, str], batch: dict) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = await asyncio.to_thread(hub, "serve", env={**env, "HOST": "0.0.0.0", "PORT": str(port)})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert "PORT" in lines[-1]
    assert not any("Traceback" in line for line in lines)


def test_arq_with_worker_settings_stops_with_one_line_naming_a_wrong_setting(redis_server: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "arq", "jobs.worker.WorkerSettings"],
        env={**os.environ, "REDIS_URL": redis_server, "JWT_SECRET": "", "LINK_SECRET": ""}, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "LINK_SECRET" in lines[0]
