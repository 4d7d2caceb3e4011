"""The production layout on private ports: PostgreSQL, Redis, Daphne ×2, tasks_worker,
and a TCP round-robin in front of the Daphne processes (the load balancer)."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
LOG_DIR = BASE_DIR / "artifacts" / "chaos"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(check, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return False


def postgres_bin() -> Path:
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")),
        key=lambda p: int(p.parent.parent.name),
    )
    if not versions:
        raise SystemExit("chaos: PostgreSQL server binaries not found under /usr/lib/postgresql")
    return versions[-1].parent


# What this checkout's run started, so that the next one can stop it (runs of
# other checkouts have their own).
PID_FILE = LOG_DIR / "pids"
CLUSTER_FILE = LOG_DIR / "cluster-port"
TMP = Path(os.environ.get("TMPDIR", "/tmp"))
OURS = ("daphne", "tasks_worker", "redis-server")


def sweep_leftovers():
    """Stop what an earlier run left behind when it was killed outright (kill -9 of the
    harness skips its cleanup): the processes it recorded, if they are still ours, and
    its PostgreSQL clusters."""
    if PID_FILE.exists():
        for line in PID_FILE.read_text().split():
            try:
                cmdline = Path(f"/proc/{int(line)}/cmdline").read_bytes().decode(errors="replace")
            except (OSError, ValueError):
                continue
            if any(name in cmdline for name in OURS):
                try:
                    os.killpg(int(line), signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        PID_FILE.unlink()
    if CLUSTER_FILE.exists():
        port = CLUSTER_FILE.read_text().strip()
        if port.isdigit():
            Postgres(int(port)).cleanup()
        CLUSTER_FILE.unlink()


def fresh_logs():
    """Each run starts with empty logs, so figures read from them are this run's."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    for path in LOG_DIR.glob("*.log"):
        path.unlink()
    PID_FILE.unlink(missing_ok=True)
    CLUSTER_FILE.unlink(missing_ok=True)


class Child:
    """One process of the layout, in its own process group, its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict | None = None, cwd=BASE_DIR):
        self.name = name
        self.args = args
        self.env = env
        self.cwd = cwd
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self):
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        with open(LOG_DIR / f"{self.name}.log", "ab") as log:
            self.process = subprocess.Popen(
                self.args,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        with open(PID_FILE, "a") as pids:
            pids.write(f"{self.process.pid}\n")
        self.starts += 1

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig=signal.SIGKILL):
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self):
        """kill -9, then reap it."""
        self.signal(signal.SIGKILL)
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def stop(self, grace: float = 5.0):
        if not self.alive():
            return
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill()


class Postgres:
    """A throw-away cluster: initdb in a temporary folder, a private port, a socket there."""

    def __init__(self, port: int):
        self.port = port
        self.bin = postgres_bin()
        self.dir = TMP / f"chaos-pg-{port}"
        self.as_postgres = os.geteuid() == 0

    def run(self, *args, check=True, timeout=60):
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(
            command,
            check=check,
            timeout=timeout,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def init(self):
        CLUSTER_FILE.write_text(str(self.port))
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        if self.as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        self.run(
            "initdb", "-D", str(self.dir / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )

    def start(self):
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200 -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off"
        )
        self.run(
            "pg_ctl",
            "-D",
            str(self.dir / "data"),
            "-l",
            str(self.dir / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self, mode="fast"):
        self.run(
            "pg_ctl",
            "-D",
            str(self.dir / "data"),
            "-m",
            mode,
            "-w",
            "-t",
            "60",
            "stop",
            check=False,
        )

    def ready(self) -> bool:
        result = subprocess.run(
            [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
            stdin=subprocess.DEVNULL,
        )
        return result.returncode == 0

    def createdb(self, name: str):
        self.run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)

    def cleanup(self):
        if (self.dir / "data" / "postmaster.pid").exists():
            self.stop(mode="immediate")
        log = self.dir / "server.log"
        if log.exists() and LOG_DIR.exists():
            shutil.copy(log, LOG_DIR / "postgres.log")
        shutil.rmtree(self.dir, ignore_errors=True)


def redis_child(port: int) -> Child:
    return Child(
        "redis",
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ],
    )


def daphne_child(name: str, port: int, env: dict) -> Child:
    # The production command of docs/OPERATIONS.md, on a private port.
    return Child(
        name,
        [
            sys.executable,
            "-m",
            "daphne",
            "-v",
            "0",
            "--no-server-name",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "chatproject.asgi:application",
        ],
        env,
    )


def worker_child(env: dict) -> Child:
    return Child("worker", [sys.executable, "manage.py", "tasks_worker"], env)


class RoundRobin:
    """A TCP load balancer: each connection goes to the next backend that accepts it
    (the other one when a process is down), websockets included."""

    def __init__(self, port: int, backends: list[int]):
        self.port = port
        self.backends = backends
        self.turn = 0
        self.open = dict.fromkeys(backends, 0)
        self.refused = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, daemon=True, name="round-robin")
        self.server = None
        self.started = threading.Event()

    def start(self):
        self.thread.start()
        self.started.wait(10)

    def _serve(self):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=512)
        )
        self.started.set()
        self.loop.run_forever()

    def stop(self):
        def close():
            if self.server:
                self.server.close()
            self.loop.stop()

        self.loop.call_soon_threadsafe(close)
        self.thread.join(5)

    async def _handle(self, reader, writer):
        self.turn += 1
        order = self.backends[self.turn % 2 :] + self.backends[: self.turn % 2]
        upstream = None
        for backend in order:
            try:
                upstream = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", backend), 2)
                break
            except (OSError, TimeoutError):
                continue
        if upstream is None:
            self.refused += 1
            writer.close()
            return
        up_reader, up_writer = upstream
        self.open[backend] += 1
        try:
            pipes = [
                asyncio.ensure_future(self._pipe(reader, up_writer)),
                asyncio.ensure_future(self._pipe(up_reader, writer)),
            ]
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            for pipe in pipes:
                pipe.cancel()
        finally:
            self.open[backend] -= 1
            for w in (writer, up_writer):
                try:
                    w.close()
                except Exception:  # noqa: BLE001, S110 - closing a dead socket
                    pass

    @staticmethod
    async def _pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
