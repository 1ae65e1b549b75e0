"""The server under test: a real uvicorn subprocess that can be SIGKILLed and started
again on the same port and database (the "server restart in the middle of the sync
storm")."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Supervisor:
    """Starts uvicorn in its own process group; `kill()` SIGKILLs that group (only it)."""

    database_url: str
    jwt_secret: str
    log_path: Path
    workers: int = 1
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0
    #: seconds from SIGKILL to healthy again, per kill
    downtime: list[float] = field(default_factory=list)
    #: CPU seconds used by server processes that were killed
    cpu_dead: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self) -> None:
        env = {**os.environ, "FIELDSYNC_DATABASE_URL": self.database_url,
               "FIELDSYNC_JWT_SECRET": self.jwt_secret, **self.extra_env}
        cmd = [sys.executable, "-m", "uvicorn", "--factory", "server.app:app_from_env",
               "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
               "--log-level", "warning", "--no-access-log", "--timeout-graceful-shutdown", "5"]
        log = self.log_path.open("ab")
        log.write(f"\n--- start #{self.starts + 1} at {time.strftime('%H:%M:%S')} ---\n".encode())
        log.flush()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        self.starts += 1

    async def start(self, wait_s: float = 90.0) -> float:
        """Start and wait until /healthz answers; returns the seconds it took."""
        t0 = time.monotonic()
        self._spawn()
        await self.wait_healthy(wait_s)
        return time.monotonic() - t0

    async def wait_healthy(self, wait_s: float = 90.0) -> None:
        deadline = time.monotonic() + wait_s
        async with httpx.AsyncClient(timeout=2.0) as http:
            while True:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"uvicorn exited with {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    if (await http.get(self.url + "/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("uvicorn did not become healthy in time:\n" + self.log_tail())
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the server's process group (uvicorn and its workers), no goodbye."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.cpu_dead += self.cpu_seconds()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.kills += 1

    async def restart_after_kill(self, down_for: float = 0.3) -> float:
        """SIGKILL, stay down `down_for` seconds, start again on the same port."""
        t0 = time.monotonic()
        self.kill()
        await asyncio.sleep(down_for)
        await self.start()
        took = time.monotonic() - t0
        self.downtime.append(took)
        return took

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            self.kill()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def cpu_seconds(self) -> float:
        """User+system CPU of the current uvicorn process group so far."""
        if self.proc is None:
            return 0.0
        total = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[2]) == self.proc.pid:  # process group id
                total += int(stat[11]) + int(stat[12])
        return total / os.sysconf("SC_CLK_TCK")

    def total_cpu(self) -> float:
        """CPU of every server process this supervisor ran (killed ones included)."""
        return self.cpu_dead + self.cpu_seconds()


def postgres_cpu(database: str) -> float:
    """User+system CPU of the local PostgreSQL backends serving `database` (a floor:
    backends that exited took their CPU time with them)."""
    total = 0
    needle = f" {database} ".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "cmdline").read_bytes().replace(b"\0", b" "):
                continue
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(stat[11]) + int(stat[12])
    return total / os.sysconf("SC_CLK_TCK")
