"""The production layout on private ports: PostgreSQL, Redis, Daphne ×3, tasks_worker,
and nginx in front of the Daphne processes (the load balancer)."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
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
OURS = ("daphne", "tasks_worker", "redis-server", "nginx")


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


class Nginx:
    """The load balancer: Debian's nginx with the shipped deploy/nginx.conf (as
    `make prod` runs it) in front of the Daphne processes, websockets included.
    `open` counts the connections each Daphne holds from it (read from
    /proc/net/tcp: its kept-alive upstream connections count too)."""

    def __init__(self, port: int, backends: list[int]):
        self.port = port
        self.backends = backends
        self.folder = LOG_DIR / "nginx"
        # What the send form may carry (chat.files.kinds.body_limit(), as `make prod`).
        self.send_max_body = "64m"
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.child = Child(
            "nginx",
            [binary, "-p", str(self.folder), "-c", str(self.folder / "nginx.conf"),
             "-e", str(self.folder / "log" / "nginx-error.log")],
        )  # fmt: skip

    def render(self):
        import importlib.util

        spec = importlib.util.spec_from_file_location("render", BASE_DIR / "deploy" / "render.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        upstreams = "\n".join(
            f"        server 127.0.0.1:{port} max_fails=0;" for port in self.backends
        )
        values = {
            "PROD_DIR": str(self.folder),
            "PROD_PORT": str(self.port),
            "PROD_CLIENT_TIMEOUT": "10",
            # The harness plays every user from 127.0.0.1.
            "PROD_CONN_PER_CLIENT": "10000",
            "PROD_MAX_BODY": "3m",
            "DEPLOY_SEND_MAX_BODY": self.send_max_body,
            "LOG_FORMAT": "plain",
            "DEPLOY_USER": pwd.getpwuid(os.geteuid()).pw_name,
            "DEPLOY_NGINX_MIME_TYPES": "/etc/nginx/mime.types",
            "DEPLOY_STATIC_ROOT": str(BASE_DIR / "staticfiles"),
            "DEPLOY_UPSTREAMS": upstreams,
        }
        template = (BASE_DIR / "deploy" / "nginx.conf").read_text()
        for folder in ("run", "log", "tmp"):
            (self.folder / folder).mkdir(parents=True, exist_ok=True)
        (self.folder / "nginx.conf").write_text(module.render(template, values))

    def start(self):
        if not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")):
            raise RuntimeError("nginx is not installed (apt-get install nginx)")
        self.render()
        self.child.start()
        if not wait_until(lambda: port_open(self.port), 10):
            raise RuntimeError("nginx did not start (see artifacts/chaos/nginx.log)")

    def stop(self):
        self.child.stop(grace=5)

    @property
    def open(self) -> dict[int, int]:
        counts = dict.fromkeys(self.backends, 0)
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if fields[3] == "01" and local_port in counts:  # ESTABLISHED, Daphne's end
                    counts[local_port] += 1
        return counts
