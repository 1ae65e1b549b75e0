"""A real uvicorn server in a subprocess, and peak-RSS readings from /proc."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path
    workers: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(database_url: str, jwt_secret: str, workers: int, log_path: Path) -> ServerProcess:
    port = free_port()
    env = {**os.environ, "FIELDSYNC_DATABASE_URL": database_url,
           "FIELDSYNC_JWT_SECRET": jwt_secret}
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "server.app:app_from_env",
           "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
           "--log-level", "warning", "--no-access-log"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = ServerProcess(proc, f"http://127.0.0.1:{port}", log_path, workers)
    _wait_healthy(server)
    return server


def _wait_healthy(server: ServerProcess, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {server.proc.returncode}:\n"
                               + log_tail(server.log_path))
        try:
            ok = httpx.get(f"{server.url}/healthz", timeout=1.0).status_code == 200
            if ok and _workers_up(server):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    stop_server(server)
    raise RuntimeError("uvicorn did not become healthy in time:\n" + log_tail(server.log_path))


def _workers_up(server: ServerProcess) -> bool:
    """With --workers N, wait until N worker processes exist (one answering is not enough)."""
    if server.workers <= 1:
        return True
    return len(_descendants(server.proc.pid)) >= server.workers


def stop_server(server: ServerProcess) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(timeout=10)


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents[int(entry.name)] = ppid
    found: list[int] = []
    frontier = [pid]
    while frontier:
        cur = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == cur]
        found.extend(kids)
        frontier.extend(kids)
    return found


def vm_hwm_kb(pid: int | str = "self") -> int:
    """Peak resident set size (VmHWM) of a process, in KiB; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM (Linux `clear_refs` 5), so later readings exclude setup."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class ServerRss:
    """Peak RSS of the uvicorn process tree: the largest process and the sum."""

    largest_kb: int
    total_kb: int
    processes: int


def server_peak_rss(server: ServerProcess) -> ServerRss:
    pids = [server.proc.pid, *_descendants(server.proc.pid)]
    values = [v for v in (vm_hwm_kb(p) for p in pids) if v]
    return ServerRss(max(values, default=0), sum(values), len(values))


def _ticks(pid: int) -> int | None:
    """User + system CPU time of a process so far, in clock ticks; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])  # utime, stime


def _cpu_of(pids: list[int]) -> float:
    return sum(_ticks(pid) or 0 for pid in pids) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """Busy CPU time of the whole machine so far (every process, the kernel included):
    what the per-process figures miss, such as backends that exited."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(server: ServerProcess) -> float:
    """User + system CPU time of the uvicorn process tree so far (all threads)."""
    return _cpu_of([server.proc.pid, *_descendants(server.proc.pid)])


class BackendCpu:
    """CPU time of the local PostgreSQL backends serving `database` while it runs.

    Connections come and go during a phase (a pool's overflow ones close when returned),
    and a backend that exits takes its CPU time out of /proc with it: reading the live
    backends only at both ends counted about half of what perf saw during a push. So a
    thread rereads them every `every_s` and keeps each backend's last reading; one that
    started during the phase counts from zero. What a backend spends after its last
    reading before it exits is lost, so this is still a (close) floor.
    """

    def __init__(self, database: str, every_s: float = 0.1) -> None:
        self._tag = f" {database} ".encode()
        self._every_s = every_s
        self._first: dict[int, int] = {}
        self._last: dict[int, int] = {}
        self._checked: dict[int, bool] = {}  # pid → serves `database`
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> BackendCpu:
        self._first = self._read()
        self._last = dict(self._first)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._last.update(self._read())

    @property
    def seconds(self) -> float:
        ticks = sum(last - self._first.get(pid, 0) for pid, last in self._last.items())
        return ticks / os.sysconf("SC_CLK_TCK")

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            self._last.update(self._read())

    def _read(self) -> dict[int, int]:
        out = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            mine = self._checked.get(pid)
            if mine is None:
                try:
                    cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
                except OSError:
                    continue
                mine = cmd.startswith(b"postgres: ") and self._tag in cmd
                # A new backend shows the postmaster's command line until it has
                # authenticated: look again later.
                if mine or b"postgres" not in cmd:
                    self._checked[pid] = mine
            if mine and (ticks := _ticks(pid)) is not None:
                out[pid] = ticks
        return out
