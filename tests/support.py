"""Helpers shared by the tests: real servers on 127.0.0.1, the skip rule, and
plain SQL on the tables by their own names."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from django.db import connection

BASE_DIR = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"


def need(condition: bool, reason: str) -> None:
    """Skip with a reason on a laptop that lacks a real part; fail under CI=true."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required under CI=true: {reason}")
    pytest.skip(reason)


def sql(query, params=()):
    """Rows of a plain SQL statement, as dicts by column name."""
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        if cursor.description is None:
            return []
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def one(query, params=()):
    [row] = sql(query, params)
    return row


def as_json(value):
    """A JSON column read with plain SQL: text on SQLite (and raw jsonb), or decoded."""
    return json.loads(value) if isinstance(value, str) else value


def clear_rate_limits() -> None:
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache

    cache = caches["default"]
    if isinstance(cache, RedisCache):
        client = cache._cache.get_client(write=True)
        keys = list(client.scan_iter(match=cache.make_key("*")))
        if keys:
            client.delete(*keys)
    else:
        cache.clear()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def served_database_url() -> str:
    """A DATABASE_URL naming the database this test session really uses."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    user = quote(settings.get("USER") or "postgres")
    password = settings.get("PASSWORD") or ""
    auth = f"{user}:{quote(password)}" if password else user
    host = settings.get("HOST") or "127.0.0.1"
    port = settings.get("PORT") or 5432
    return f"postgres://{auth}@{host}:{port}/{settings['NAME']}"


def wait_for_http(url: str, timeout: float = 30.0, process=None) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException as exc:
            last = exc
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s: {last}")


class ManagedProcess:
    """A child process a test starts and stops (terminate, then kill)."""

    process = None
    stop_timeout = 5

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def env(self):
        """The environment of the child: the project on the test database,
        then what the subclass adds (`own_env`), then the test's `extra_env`."""
        env = dict(os.environ)
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "chatproject.settings",
                "DATABASE_URL": served_database_url(),
                "DEBUG": "1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.own_env())
        env.update(self.extra_env)
        return env

    def own_env(self):
        return {}

    def _launch(self, *args):
        """Start `python *args` in the project, its output to `self.log_path`."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [sys.executable, *args],
            cwd=BASE_DIR,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Server(ManagedProcess):
    """A real Daphne process serving the project on 127.0.0.1."""

    def __init__(self, port=None, env=None, log_path=None):
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.extra_env = env or {}
        self.process = None
        self.log_path = log_path or (BASE_DIR / "artifacts" / f"daphne-{self.port}.log")

    def own_env(self):
        return {"PUBLIC_BASE_URL": self.base_url, "SECURE_SSL_REDIRECT": "0"}

    def start(self):
        # The production command of docs/OPERATIONS.md: Daphne's own access log
        # off (-v 0, the app logs each request), no `Server` header.
        self._launch(
            "-m", "daphne", "-v", "0", "--no-server-name",
            "-b", "127.0.0.1", "-p", str(self.port), "chatproject.asgi:application",
        )  # fmt: skip
        wait_for_http(f"{self.base_url}/healthz", process=self.process)
        return self


class Worker(ManagedProcess):
    """A real `manage.py tasks_worker` process on the test database."""

    stop_timeout = 10

    def __init__(self, env=None, poll=0.1, log_path=None):
        self.extra_env = env or {}
        self.poll = poll
        self.process = None
        self.log_path = log_path or (BASE_DIR / "artifacts" / f"worker-{os.getpid()}.log")

    def start(self):
        self._launch("manage.py", "tasks_worker", "--poll", str(self.poll))
        return self
