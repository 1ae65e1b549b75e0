"""Real uvicorn server processes for tests that need a network (pokes, faults, clients)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen[bytes]

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/graphql"


@contextmanager
def uvicorn_server(database_url: str, jwt_secret: str, extra_env: dict[str, str] | None = None,
                   workers: int = 1, log_level: str = "warning",
                   stderr: IO[bytes] | None = None) -> Iterator[ServerProcess]:
    """`stderr`: a file to collect the server's log in (default: the test's own stderr)."""
    port = free_port()
    env = {**os.environ, "FIELDSYNC_DATABASE_URL": database_url,
           "FIELDSYNC_JWT_SECRET": jwt_secret, **(extra_env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "server.app:app_from_env",
         "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
         "--log-level", log_level],
        cwd=ROOT, env=env, stderr=stderr,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"uvicorn did not start (exit {proc.poll()})")
            time.sleep(0.1)
        yield ServerProcess(url, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
