"""`make chaos`: the production layout under faults, judged from the database.

Starts its own PostgreSQL cluster and Redis on private ports, three Daphne
processes behind nginx (deploy/nginx.conf, as `make prod` runs it),
`manage.py tasks_worker`, and a stand-in n8n
(chaos/standin.py) that calls back like the shipped workflow and serves n8n's
public API for reconciliation. Users send messages for a while; faults come
one at a time in their own window (kill -9 of each process, Redis stopped,
PostgreSQL restarted, n8n refusing, answering 503, hanging, and the app
unreachable from n8n, and a Daphne killed while a send with a file waits
for its conversation's lock: the file written, its row never committed, an
orphan by design). About a third of the sends carry files (multipart, as
the page sends them) into the run's own MEDIA_ROOT. After a settle period
longer than the task timeout, the database is checked, and the storage against
`chat_attachments` (before and after `manage.py clean_files`, which removes
what a process killed between writing a file and committing its row leaves
behind); the figures are printed and written to
docs/RELIABILITY.md (the short run: artifacts/chaos/RELIABILITY-short.md).
Exit status 1 when an assertion fails.

    make chaos                 # about 9 minutes
    make chaos CHAOS_SHORT=1   # under 3 minutes, for CI
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import random
import re
import secrets
import signal
import string
import sys
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import requests

from . import stack
from .standin import FAIL_MARK, StandInN8n

BASE_DIR = stack.BASE_DIR
SHORT = os.environ.get("CHAOS_SHORT", "") not in ("", "0")
API_KEY = "chaos-api-key-" + secrets.token_hex(8)
SECRET_KEY = "chaos-" + secrets.token_hex(32)
TERMINAL = {"completed", "failed", "timeout", "cancelled"}
FILE_SHARE = 0.33  # of the sends carry files
MID_SEND = b"a send killed between writing its file and committing its row\n"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@dataclass
class Config:
    users: int
    load_seconds: float
    task_timeout: int
    reconcile_after: int
    heartbeat_max_age: int
    faults: list  # (offset, kind, seconds)
    report: Path


def config() -> Config:
    if SHORT:
        return Config(
            users=int(os.environ.get("CHAOS_USERS", 4)),
            load_seconds=108,
            task_timeout=30,
            reconcile_after=8,
            heartbeat_max_age=4,
            # n8n refusing then answering 503 is one 10 s outage; with the hang (a dispatch
            # waits out its read timeout) no task sees n8n away for more than ~15 s.
            faults=[
                (4, "kill daphne-a", 3),
                (10, "kill daphne-b", 3),
                (16, "kill worker", 12),
                (29, "kill daphne-c mid-send", 3),
                (36, "stop redis", 8),
                (50, "restart postgres", 6),
                (58, "n8n refuses", 6),
                (64, "n8n answers 503", 4),
                (72, "n8n hangs", 4),
                (88, "app unreachable from n8n", 16),
            ],
            report=BASE_DIR / "artifacts" / "chaos" / "RELIABILITY-short.md",
        )
    return Config(
        users=int(os.environ.get("CHAOS_USERS", 10)),
        load_seconds=350,
        task_timeout=120,
        reconcile_after=30,
        heartbeat_max_age=15,
        faults=[
            (15, "kill daphne-a", 5),
            (30, "kill daphne-b", 5),
            (45, "kill worker", 30),
            (80, "kill daphne-c", 5),
            (90, "stop redis", 20),
            (112, "kill daphne-c mid-send", 5),
            (125, "restart postgres", 8),
            (145, "n8n refuses", 30),
            (190, "n8n answers 503", 20),
            (225, "n8n hangs", 20),
            (260, "app unreachable from n8n", 60),
        ],
        report=BASE_DIR / "docs" / "RELIABILITY.md",
    )


def log(text: str):
    print(f"[chaos {time.strftime('%H:%M:%S')}] {text}", flush=True)


# --- what the harness saw -----------------------------------------------------------------


@dataclass
class Record:
    t0: float = field(default_factory=time.monotonic)
    t0_wall: float = field(default_factory=time.time)
    lock: threading.Lock = field(default_factory=threading.Lock)
    sends: list = field(default_factory=list)  # (t, user, code, task_id)
    file_sends: list = field(default_factory=list)  # (t, user, code, message_id, sha256s)
    responses: list = field(default_factory=list)  # (t, what, code) code: int or "conn"
    health: list = field(default_factory=list)  # (t, name, code, body, open sockets)
    sockets: Counter = field(default_factory=Counter)  # handshake outcomes
    socket_events: list = field(default_factory=list)  # (t, outcome)
    windows: list = field(default_factory=list)  # dicts: kind, start, end, down
    restarts: Counter = field(default_factory=Counter)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def add(self, name: str, row):
        with self.lock:
            getattr(self, name).append(row)


# --- the layout -----------------------------------------------------------------------------


class Layout:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.pg = stack.Postgres(stack.free_port())
        self.redis_port = stack.free_port()
        self.n8n_port = stack.free_port()
        self.proxy_port = stack.free_port()
        self.daphne_ports = {
            name: stack.free_port() for name in ("daphne-a", "daphne-b", "daphne-c")
        }
        # The run's attachment storage, inside the cluster's folder (removed with it).
        self.media = self.pg.dir / "media"
        self.standin = StandInN8n(self.n8n_port, API_KEY)
        self.base_url = f"http://127.0.0.1:{self.proxy_port}"
        self.env = self.app_env()
        self.proxy = stack.Nginx(self.proxy_port, list(self.daphne_ports.values()), self.env)
        self.redis = stack.redis_child(self.redis_port)
        self.children = {
            name: stack.daphne_child(name, port, self.env)
            for name, port in self.daphne_ports.items()
        }
        self.children["worker"] = stack.worker_child(self.env)
        self.down: set[str] = set()  # processes the harness keeps down on purpose
        self.mid_send = None  # the account the send killed mid-way uses
        self.mid_send_files: set[str] = set()  # the files that send wrote
        self.supervising = False
        self.unexpected_exits = Counter()

    def app_env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("N8N_", "TASK"))}
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "chatproject.settings",
                "DATABASE_URL": f"postgres://postgres@127.0.0.1:{self.pg.port}/chat",
                "DATABASE_POOL_MAX": "10",
                "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
                "DEBUG": "0",
                "SECRET_KEY": SECRET_KEY,
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "PUBLIC_BASE_URL": self.base_url,
                "SECURE_SSL_REDIRECT": "0",
                "SESSION_COOKIE_SECURE": "0",
                "CSRF_COOKIE_SECURE": "0",
                "N8N_BASE_URL": f"http://127.0.0.1:{self.n8n_port}",
                "N8N_API_KEY": API_KEY,
                "TASK_TIMEOUT_SECONDS": str(self.cfg.task_timeout),
                "TASK_RECONCILE_AFTER_SECONDS": str(self.cfg.reconcile_after),
                # A Daphne killed right after a send's commit takes its
                # dispatch claim with it: the worker retries once the lease
                # lapses, which must come well before the task's deadline
                # (the default 60 s lease outlives the short run's 30 s timeout).
                "TASK_DISPATCH_LEASE_SECONDS": str(min(60, self.cfg.task_timeout // 2)),
                "TASKS_WORKER_HEARTBEAT_MAX_AGE": str(self.cfg.heartbeat_max_age),
                "MEDIA_ROOT": str(self.media),
                "LOG_LEVEL": "WARNING",
                "PYTHONUNBUFFERED": "1",
                # The harness plays a few users from one address.
                "SIGNUP_RATE_LIMIT": "",
                "CONVERSATION_RATE_LIMIT": "",
            }
        )
        return env

    def start(self):
        stack.sweep_leftovers()
        stack.fresh_logs()
        log(f"PostgreSQL {self.pg.bin.parent.name} cluster on port {self.pg.port}")
        self.pg.init()
        self.pg.start()
        self.pg.createdb("chat")
        log(f"redis-server on port {self.redis_port}")
        self.redis.start()
        if not stack.wait_until(lambda: stack.port_open(self.redis_port), 10):
            raise RuntimeError("redis-server did not start")
        log("migrate")
        subprocess_run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], self.env)
        self.standin.start()
        self.proxy.start()
        for name in (*self.daphne_ports, "worker"):
            self.children[name].start()
        for name, port in self.daphne_ports.items():
            if not stack.wait_until(lambda p=port: stack.port_open(p), 30):
                raise RuntimeError(f"{name} did not start (see artifacts/chaos/{name}.log)")
        log(
            f"Daphne on {list(self.daphne_ports.values())} behind {self.base_url}; "
            f"stand-in n8n on {self.n8n_port}"
        )
        self.supervising = True
        threading.Thread(target=self.supervise, daemon=True, name="supervisor").start()

    def supervise(self):
        """What systemd would do: restart a process that died, unless the harness holds it down."""
        while self.supervising:
            for name, child in self.children.items():
                if name not in self.down and not child.alive() and self.supervising:
                    self.unexpected_exits[name] += 1
                    log(f"{name} exited by itself ({child.process.returncode}); restarting")
                    child.start()
            time.sleep(1)

    def cleanup(self):
        self.supervising = False
        for child in [*self.children.values(), self.redis]:
            child.stop(grace=3)
        self.proxy.stop()
        self.standin.stop()
        self.pg.cleanup()


def subprocess_run(args, env):
    import subprocess

    result = subprocess.run(
        args,
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


# --- users --------------------------------------------------------------------------------------


def make_users(layout: Layout, count: int) -> list[dict]:
    """Accounts with a conversation each, signed in through a real session row."""
    os.environ.update(layout.env)
    sys.path.insert(0, str(BASE_DIR))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client

    from chat.models import Conversation

    users = []
    for i in range(count):
        user = get_user_model().objects.create_user(f"chaos{i}", password=secrets.token_hex(12))
        conversation = Conversation.objects.create(user=user, title=f"chaos {i}")
        client = Client()
        client.force_login(user)
        users.append(
            {
                "name": user.username,
                "session": client.cookies["sessionid"].value,
                "conversation": conversation.pk,
            }
        )
    from django.db import connections

    connections.close_all()
    return users


class UserLoop(threading.Thread):
    """One person: send, wait for the reply (or the failure), think, send again."""

    def __init__(self, index, account, base_url, record: Record, until: float, task_timeout):
        super().__init__(daemon=True, name=f"user-{index}")
        self.index = index
        self.account = account
        self.base_url = base_url
        self.record = record
        self.until = until
        self.task_timeout = task_timeout
        self.csrf = "".join(random.choices(string.ascii_letters + string.digits, k=32))
        self.http = requests.Session()
        self.http.cookies.set("sessionid", account["session"])
        self.http.cookies.set("csrftoken", self.csrf)
        self.sent = 0

    def call(self, what, method, url, **kwargs):
        try:
            response = self.http.request(method, url, timeout=(3, 20), **kwargs)
        except requests.RequestException:
            self.record.add("responses", (self.record.now(), what, "conn"))
            return None
        self.record.add("responses", (self.record.now(), what, response.status_code))
        return response

    def run(self):
        conversation = self.account["conversation"]
        while self.record.now() < self.until:
            self.sent += 1
            text = f"Message {self.sent} from user {self.index}"
            if random.random() < 0.05:
                text += f" {FAIL_MARK}"
            files = self.files() if random.random() < FILE_SHARE else []
            response = self.call(
                "send",
                "POST",
                f"{self.base_url}/chat/{conversation}/messages/",
                data={"content": text},
                files=[("files", entry) for entry in files] or None,
                headers={
                    "Accept": "application/json",
                    "X-CSRFToken": self.csrf,
                    "Referer": self.base_url + "/",
                },
            )
            code = response.status_code if response is not None else "conn"
            task_id = message_id = None
            if code == 201:
                body = response.json()
                task_id, message_id = body["task"]["id"], body["message"]["id"]
            self.record.add("sends", (self.record.now(), self.index, code, task_id))
            if files:
                hashes = sorted(hashlib.sha256(data).hexdigest() for _, data, _ in files)
                self.record.add(
                    "file_sends", (self.record.now(), self.index, code, message_id, hashes)
                )
            if task_id:
                self.wait_for(task_id)
                time.sleep(random.uniform(0.5, 2.0))
            elif code == 429:
                time.sleep(min(float(response.headers.get("Retry-After") or 5), 10))
            else:
                time.sleep(random.uniform(1.0, 2.0))

    def files(self) -> list[tuple[str, bytes, str]]:
        """A text file of this send's own (so its hash names it), sometimes an image too."""
        words = f"notes of user {self.index}, send {self.sent}, {secrets.token_hex(8)}\n"
        files = [("notes.txt", (words * random.randint(1, 400)).encode(), "text/plain")]
        if random.random() < 0.5:
            files.append(("dot.png", PNG, "image/png"))
        return files

    def wait_for(self, task_id):
        deadline = self.record.now() + self.task_timeout + 30
        while self.record.now() < min(deadline, self.until + 5):
            response = self.call(
                "poll",
                "GET",
                f"{self.base_url}/tasks/{task_id}/",
                headers={"Accept": "application/json"},
            )
            if response is not None and response.status_code == 200:
                body = response.json()
                status = (body.get("task") or body).get("status")
                if status in TERMINAL:
                    return
            time.sleep(1)


class Sockets(threading.Thread):
    """Each user keeps its conversation's websocket open, reconnecting after a second."""

    def __init__(self, accounts, proxy_port, record: Record, until: float):
        super().__init__(daemon=True, name="sockets")
        self.accounts = accounts
        self.proxy_port = proxy_port
        self.record = record
        self.until = until

    def run(self):
        asyncio.run(self.main())

    async def main(self):
        await asyncio.gather(*(self.one(account) for account in self.accounts))

    async def one(self, account):
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidStatus

        url = f"ws://127.0.0.1:{self.proxy_port}/ws/chat/{account['conversation']}/"
        headers = {
            "Cookie": f"sessionid={account['session']}",
            "Origin": f"http://127.0.0.1:{self.proxy_port}",
        }
        while self.record.now() < self.until:
            outcome = None
            try:
                async with asyncio.timeout(10):
                    socket = await connect(url, additional_headers=headers, open_timeout=5)
                self.note("opened")
                async with socket:
                    while self.record.now() < self.until:
                        try:
                            await asyncio.wait_for(socket.recv(), 1)
                        except TimeoutError:
                            continue
            except InvalidStatus as exc:
                outcome = f"refused with HTTP {exc.response.status_code}"
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else "none"
                outcome = f"closed by the server (code {code})"
            except (OSError, TimeoutError) as exc:
                outcome = f"no connection ({type(exc).__name__})"
            except Exception as exc:  # noqa: BLE001 - counted, the loop goes on
                outcome = f"error {type(exc).__name__}"
            if outcome:
                self.note(outcome)
            await asyncio.sleep(1)

    def note(self, outcome):
        with self.record.lock:
            self.record.sockets[outcome] += 1
            self.record.socket_events.append((self.record.now(), outcome))


class HealthPoller(threading.Thread):
    """GET /healthz on one Daphne process every second (as a load balancer would); one
    poller per process, so a probe that hangs on one does not starve the other."""

    def __init__(self, layout: Layout, name: str, record: Record, until: float):
        super().__init__(daemon=True, name=f"healthz-{name}")
        self.layout = layout
        self.process_name = name
        self.port = layout.daphne_ports[name]
        self.record = record
        self.until = until

    def run(self):
        http = requests.Session()
        while self.record.now() < self.until:
            started = time.monotonic()
            t = self.record.now()
            try:
                response = http.get(f"http://127.0.0.1:{self.port}/healthz", timeout=(1, 4))
                code, body = response.status_code, response.text[:300]
            except requests.Timeout:
                code, body = "no answer", ""
            except requests.RequestException:
                code, body = "conn", ""
            sockets = self.layout.proxy.open.get(self.port, 0)
            self.record.add("health", (t, self.process_name, code, body, sockets))
            time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))


# --- faults ---------------------------------------------------------------------------------


def inject(layout: Layout, record: Record, kind: str, seconds: float):
    window = {"kind": kind, "start": record.now(), "end": None, "down": None}
    record.windows.append(window)
    log(f"fault: {kind} ({seconds:g} s)")
    if kind.endswith(" mid-send"):
        kill_mid_send(layout, record, window, kind.split()[1], seconds)
    elif kind.startswith("kill "):
        name = kind.removeprefix("kill ")
        layout.down.add(name)
        layout.children[name].kill()
        window["down"] = "worker" if name == "worker" else None
        time.sleep(seconds)
        window["restart"] = record.now()
        layout.children[name].start()
        layout.down.discard(name)
        if name in layout.daphne_ports:
            stack.wait_until(lambda: stack.port_open(layout.daphne_ports[name]), 30)
    elif kind == "stop redis":
        window["down"] = "redis"
        layout.redis.kill()
        time.sleep(seconds)
        window["restart"] = record.now()
        layout.redis.start()
        stack.wait_until(lambda: stack.port_open(layout.redis_port), 10)
    elif kind == "restart postgres":
        window["down"] = "postgres"
        layout.pg.stop(mode="fast")
        time.sleep(seconds)
        window["restart"] = record.now()
        layout.pg.start()
        stack.wait_until(layout.pg.ready, 30)
    elif kind == "n8n refuses":
        layout.standin.set_mode("refuse")
        time.sleep(seconds)
        layout.standin.set_mode("ok")
    elif kind == "n8n answers 503":
        layout.standin.set_mode("503")
        time.sleep(seconds)
        layout.standin.set_mode("ok")
    elif kind == "n8n hangs":
        layout.standin.set_mode("hang")
        time.sleep(seconds)
        layout.standin.set_mode("ok")
    elif kind == "app unreachable from n8n":
        layout.standin.app_unreachable = True
        time.sleep(seconds)
        layout.standin.app_unreachable = False
    else:
        raise ValueError(kind)
    window["end"] = record.now()


def kill_mid_send(layout: Layout, record: Record, window: dict, name: str, seconds: float):
    """kill -9 of the Daphne `name` while a send with a file waits for its conversation's
    lock (held here): the send wrote its file before its transaction (chat/services.py),
    its row is never committed. That file is what `manage.py clean_files` is for."""
    import psycopg

    account = layout.mid_send
    port = layout.daphne_ports[name]
    before = stored_files(layout)
    csrf = secrets.token_hex(16)

    def send():
        try:
            requests.post(
                f"http://127.0.0.1:{port}/chat/{account['conversation']}/messages/",
                data={"content": "a send killed mid-way"},
                files=[("files", ("mid-send.txt", MID_SEND, "text/plain"))],
                cookies={"sessionid": account["session"], "csrftoken": csrf},
                headers={"Accept": "application/json", "X-CSRFToken": csrf},
                timeout=(3, 30),
            )
        except requests.RequestException:
            pass  # the process is killed under it

    def ours(names):
        found = set()
        for name in names:
            try:
                if (layout.media / name).read_bytes() == MID_SEND:
                    found.add(name)
            except OSError:
                pass  # still being written
        return found

    dsn = f"host=127.0.0.1 port={layout.pg.port} user=postgres dbname=chat"
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT id FROM chat_conversations WHERE id = %s FOR UPDATE",
                [account["conversation"]],
            )
            sender = threading.Thread(target=send, daemon=True, name="mid-send")
            sender.start()
            written = stack.wait_until(lambda: ours(stored_files(layout) - before), 10, 0.05)
            layout.down.add(name)
            layout.children[name].kill()
            layout.mid_send_files = ours(stored_files(layout) - before)
            window["written"] = written
        conn.rollback()
    sender.join(timeout=10)
    time.sleep(seconds)
    window["restart"] = record.now()
    layout.children[name].start()
    layout.down.discard(name)
    stack.wait_until(lambda: stack.port_open(port), 30)


# --- the verdict ----------------------------------------------------------------------------------


def db_rows(layout: Layout):
    import psycopg

    dsn = f"host=127.0.0.1 port={layout.pg.port} user=postgres dbname=chat"
    with psycopg.connect(dsn, connect_timeout=10) as conn, conn.cursor() as cur:
        cur.execute(
            """
            SELECT t.id, t.status, t.status_message, t.error_details, t.current_step,
                   t.input_data->>'message', t.n8n_execution_id,
                   COALESCE(array_agg(m.content) FILTER (WHERE m.id IS NOT NULL), '{}')
            FROM async_tasks t
            LEFT JOIN chat_messages m ON m.async_task_id = t.id AND m.role = 'assistant'
            GROUP BY t.id ORDER BY t.id
            """
        )
        return [
            {
                "id": r[0],
                "status": r[1],
                "status_message": r[2] or "",
                "error": r[3],
                "step": r[4] or "",
                "message": r[5] or "",
                "execution": r[6] or "",
                "replies": list(r[7]),
            }
            for r in cur.fetchall()
        ]


def task_events(layout: Layout, task_ids: list[int]) -> dict[int, list]:
    import psycopg

    dsn = f"host=127.0.0.1 port={layout.pg.port} user=postgres dbname=chat"
    trails: dict[int, list] = {}
    with psycopg.connect(dsn, connect_timeout=10) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT task_id, extract(epoch from created_at), source, status, current_step "
            "FROM async_task_events WHERE task_id = ANY(%s) ORDER BY id",
            [task_ids],
        )
        for task_id, at, source, status, step in cur.fetchall():
            trails.setdefault(task_id, []).append((float(at), f"{source}: {status} {step}"))
    return trails


def story(task_id: int, events: dict, standin: StandInN8n, t0_wall: float) -> str:
    """The task's events in the app and its executions in the stand-in, merged in time."""
    lines = [(at, f"app {what.strip()}") for at, what in events.get(task_id, [])]
    for execution in list(standin.executions.values()):
        if execution.task_id == task_id:
            lines += [(at, f"n8n #{execution.id} {what}") for at, what in execution.trail]
    return "; ".join(f"{at - t0_wall:.1f} {what}" for at, what in sorted(lines))


def open_tasks(layout: Layout) -> int | None:
    try:
        return sum(1 for row in db_rows(layout) if row["status"] not in TERMINAL)
    except Exception:  # noqa: BLE001 - PostgreSQL may be briefly away
        return None


def cause(row) -> str:
    if row["status"] == "failed" and FAIL_MARK in row["message"]:
        return "failed on purpose (the workflow reported a model error)"
    error = row["error"] if isinstance(row["error"], dict) else {}
    detail = error.get("stage") or error.get("source") or error.get("kind") or ""
    words = row["status_message"][:70]
    return f"{row['status']}" + (f" [{detail}]" if detail else "") + (f": {words}" if words else "")


def window_of(t: float, windows, tail: float = 5.0) -> str:
    """The fault active at t (from 1 s before it), else one that ended less than `tail` ago."""
    for margin in (0.0, tail):
        for window in windows:
            end = window["end"] if window["end"] is not None else t
            if window["start"] - 1 <= t <= end + margin:
                return window["kind"]
    return "no fault"


def fault_before(t: float, windows, within: float) -> str:
    """The latest fault that began before t and ended less than `within` seconds before it."""
    for window in reversed(windows):
        end = window["end"] if window["end"] is not None else t
        if window["start"] - 1 <= t <= end + within:
            return window["kind"]
    return "no fault"


def server_errors() -> Counter:
    """Each 500 in the Daphne logs: (path, the last frame in this project, the exception)."""
    found = Counter()
    for path in sorted(stack.LOG_DIR.glob("daphne-*.log")):
        request, frame, exception = None, "?", "?"
        for line in path.read_text(errors="replace").splitlines():
            if request and (line.startswith("Internal Server Error: ") or ACCESS_LINE.search(line)):
                found[(request, frame, exception[:90])] += 1
                request = None
            if line.startswith("Internal Server Error: "):
                request = re.sub(r"/\d+/", "/{id}/", line.split(": ", 1)[1].strip())
                frame, exception = "?", "?"
            elif request and (match := PROJECT_FRAME.search(line)):
                frame = f"{match.group(1)}:{match.group(2)}"
            elif request and EXCEPTION_LINE.match(line):
                exception = line
        if request:
            found[(request, frame, exception[:90])] += 1
    return found


# The app's access line (logger chatproject.access), plain or JSON.
ACCESS_LINE = re.compile(r'chatproject\.access"? ')
PROJECT_FRAME = re.compile(r'File "[^"]*/((?:chat|tasks|chatproject)/[^"]+)", line (\d+)')
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Timeout)\b")


def expected_health(t: float, windows, cfg: Config):
    """'up', 'down: <part>', or None when t is too close to a change to judge."""
    verdicts = [window_health(t, window, cfg) for window in windows]
    if None in verdicts:
        return None
    down = [v for v in verdicts if v != "up"]
    return down[0] if down else "up"


def window_health(t: float, window, cfg: Config):
    part = window["down"]
    end = window["end"] if window["end"] is not None else t + 1
    settle = 6.0  # after a part comes back: reconnects, the worker's first pass
    if window["start"] - 1 <= t < end + settle:
        if part is None:
            # a Daphne kill: the other process held every socket; nothing to judge
            return None if window["kind"].startswith("kill daphne") else "up"
        lag = cfg.heartbeat_max_age + 3 if part == "worker" else 2
        if window["start"] + lag <= t < window.get("restart", end):
            return f"down: {part}"
        return None
    return "up"


def stored_files(layout: Layout) -> set[str]:
    """The storage names of every file in the run's MEDIA_ROOT."""
    if not layout.media.exists():
        return set()
    return {
        path.relative_to(layout.media).as_posix()
        for path in layout.media.rglob("*")
        if path.is_file()
    }


def attachment_rows(layout: Layout) -> list[tuple[int, str, str]]:
    import psycopg

    dsn = f"host=127.0.0.1 port={layout.pg.port} user=postgres dbname=chat"
    with psycopg.connect(dsn, connect_timeout=10) as conn, conn.cursor() as cur:
        cur.execute("SELECT message_id, file, sha256 FROM chat_attachments ORDER BY id")
        return list(cur.fetchall())


def file_figures(layout: Layout, record: Record) -> dict:
    """The storage against chat_attachments, before and after `manage.py clean_files`
    (every file older than 0 minutes: the load is over), and the acknowledged sends'
    files against both."""
    before_files = stored_files(layout)
    before_rows = attachment_rows(layout)
    names = {name for _, name, _ in before_rows}
    before = {
        "files": len(before_files),
        "without_row": sorted(before_files - names),
        "without_file": sorted(names - before_files),
    }
    cleaned = subprocess_run(
        [sys.executable, "manage.py", "clean_files", "--older-than", "0"], layout.env
    ).strip()
    after_files = stored_files(layout)
    rows = attachment_rows(layout)
    names = {name for _, name, _ in rows}
    by_message: dict[int, list] = {}
    for message_id, name, sha256 in rows:
        by_message.setdefault(message_id, []).append((name, sha256))
    acked = [s for s in record.file_sends if s[2] == 201]
    # The killed send's file: written, no row (other sends' files of those seconds have theirs).
    planted = sorted(layout.mid_send_files & set(before["without_row"]))
    missing = []
    for _t, user, _code, message_id, hashes in acked:
        found = by_message.get(message_id, [])
        if sorted(sha for _, sha in found) != hashes:
            missing.append((message_id, user, f"{len(found)} of {len(hashes)} rows"))
        elif any(name not in after_files for name, _ in found):
            missing.append((message_id, user, "a row's file is not in storage"))
    return {
        "sends": len(record.file_sends),
        "acked": len(acked),
        "acked_files": sum(len(s[4]) for s in acked),
        "codes": Counter(str(s[2]) for s in record.file_sends),
        "before": before,
        "cleaned": cleaned,
        "rows": len(rows),
        "stored": len(after_files),
        "without_row": sorted(after_files - names),
        "without_file": sorted(names - after_files),
        "missing": missing,
        "mid_send": planted,
        "mid_send_left": sorted(set(planted) & after_files),
    }


def verdict(layout: Layout, record: Record, cfg: Config, started_at: str, wall: float):
    rows = db_rows(layout)
    files = file_figures(layout, record)
    by_id = {row["id"]: row for row in rows}
    acked = [task for (_, _, code, task) in record.sends if code == 201 and task]
    send_codes = Counter(str(code) for (_, _, code, _) in record.sends)

    ended_badly = []
    for task_id in acked:
        row = by_id.get(task_id)
        if row is None:
            ended_badly.append((task_id, "no such task in the database"))
        elif row["status"] == "completed" and len(row["replies"]) != 1:
            ended_badly.append((task_id, f"completed with {len(row['replies'])} replies"))
        elif row["status"] in ("failed", "timeout", "cancelled") and (
            row["replies"] or not row["status_message"]
        ):
            ended_badly.append((task_id, f"{row['status']} without a visible reason"))
        elif row["status"] not in TERMINAL:
            ended_badly.append((task_id, f"still {row['status']}"))
    duplicates = [row["id"] for row in rows if len(row["replies"]) > 1]
    stuck = [row["id"] for row in rows if row["status"] not in TERMINAL]
    produced = layout.standin.produced
    lost = []
    foreign = []
    for task_id, contents in produced.items():
        row = by_id.get(task_id)
        if row is None or not row["replies"]:
            lost.append((task_id, row["status"] if row else "missing", cause(row) if row else ""))
        elif not set(row["replies"]) <= set(contents):
            foreign.append(task_id)
    failures = Counter(cause(row) for row in rows if row["status"] in ("failed", "timeout"))
    sent_at = {task: t for (t, _, code, task) in record.sends if task}
    unwanted = [
        (
            row["id"],
            round(sent_at.get(row["id"], -1), 1),
            fault_before(sent_at.get(row["id"], -1), record.windows, cfg.task_timeout),
            cause(row),
            json.dumps(row["error"])[:160],
        )
        for row in rows
        if row["status"] in ("failed", "timeout") and "on purpose" not in cause(row)
    ]
    told = [row[0] for row in unwanted[:10]] + [row[0] for row in lost[:10]]
    try:
        events = task_events(layout, told)
    except Exception:  # noqa: BLE001 - the stories are a help, not a check
        events = {}
    stories = {task_id: story(task_id, events, layout.standin, record.t0_wall) for task_id in told}
    causes_500 = server_errors()
    sockets_by_window = Counter(
        (window_of(t, record.windows), outcome) for (t, outcome) in record.socket_events
    )
    unwanted_failures = sum(n for c, n in failures.items() if "on purpose" not in c)

    errors = [
        (t, what, code)
        for (t, what, code) in record.responses
        if isinstance(code, int) and code >= 500
    ]
    errors_by_window = Counter(
        (window_of(t, record.windows), what, code) for (t, what, code) in errors
    )
    conn_by_window = Counter(
        (window_of(t, record.windows), what)
        for (t, what, code) in record.responses
        if code == "conn"
    )
    bad_500 = [
        e for e in errors if e[2] == 500 and window_of(e[0], record.windows) != "restart postgres"
    ]

    health = Counter()
    disagree = []
    for t, name, code, body, sockets in record.health:
        if code == "conn":
            health[("process down or restarting", "no connection")] += 1
            continue
        expected = expected_health(t, record.windows, cfg)
        if expected is None:
            health[("changing (not judged)", str(code))] += 1
            continue
        health[
            (expected + (" (sockets open)" if sockets and expected == "up" else ""), str(code))
        ] += 1
        want = 200 if expected == "up" else 503
        if code != want:
            disagree.append((round(t, 1), name, expected, code, body[:120]))
    judged = sum(n for (k, _), n in health.items() if not k.startswith(("changing", "process")))
    up_with_sockets = sum(n for (k, c), n in health.items() if "sockets open" in k and c == "200")

    checks = [
        (
            "every acknowledged send ends with exactly one reply or a visible failure",
            not ended_badly,
            f"{len(ended_badly)} of {len(acked)} did not",
        ),
        ("no duplicate replies", not duplicates, f"{len(duplicates)} tasks with more than one"),
        ("no task stuck pending/processing", not stuck, f"{len(stuck)} stuck"),
        (
            "no reply lost that n8n produced",
            not lost,
            f"{len(lost)} of {len(produced)} produced replies never stored",
        ),
        ("every stored reply is one n8n produced", not foreign, f"{len(foreign)} differ"),
        (
            "no failure the harness did not cause on purpose",
            unwanted_failures == 0,
            f"{unwanted_failures} failed or timed out",
        ),
        ("no HTTP 500 outside the PostgreSQL restart", not bad_500, f"{len(bad_500)} answered 500"),
        (
            "/healthz agrees with the real state (200 up, 503 down)",
            not disagree and judged > 0,
            f"{len(disagree)} of {judged} judged probes disagreed",
        ),
        (
            "every acknowledged send's files are stored, each with its row",
            not files["missing"] and files["acked"] > 0,
            f"{len(files['missing'])} of {files['acked']} sends with files "
            f"({files['acked_files']} files) not whole",
        ),
        (
            "the send killed mid-way left its file without a row; clean_files removed it",
            bool(files["mid_send"]) and not files["mid_send_left"],
            f"{len(files['mid_send'])} such files, {len(files['mid_send_left'])} left after",
        ),
        (
            "no orphans after clean_files: every stored file has its row, every row its file",
            not files["without_row"] and not files["without_file"],
            f"{len(files['without_row'])} files without a row, "
            f"{len(files['without_file'])} rows without a file "
            f"(before clean_files: {len(files['before']['without_row'])} and "
            f"{len(files['before']['without_file'])})",
        ),
    ]
    report = render(layout, record, cfg, started_at, wall, locals())
    return checks, report


def render(layout, record, cfg, started_at, wall, v) -> str:
    lines = []
    add = lines.append
    kind = "short (CI)" if SHORT else "full"
    add("# Reliability: the fault run (`make chaos`)")
    add("")
    add("Written by `make chaos` (chaos/run.py); do not edit by hand. What it runs: its own")
    add("PostgreSQL cluster and Redis on private ports, three")
    add("Daphne processes (the production command of docs/OPERATIONS.md) behind nginx")
    add("(`deploy/nginx.conf`, as `make prod` runs it), `manage.py tasks_worker`, and a")
    add("stand-in n8n that answers each dispatch with its execution id, calls back")
    add("`processing` and `completed` with n8n's *Retry On Fail* as set in")
    add(f"`n8n/chat-reply-offline.json` (processing: {retry_words(layout.standin.processing)};")
    add(f"completed: {retry_words(layout.standin.completed)}), and serves")
    add("`GET /api/v1/executions/{id}` in the shape")
    add("of n8n's public API, the reply in the run data of the node `Result`. Users send")
    add("messages (about 5 % of them ask the workflow to fail on purpose, about a third")
    add("carry files) and wait for each reply; each keeps its conversation's websocket")
    add("open. `/healthz` is polled on each process every second. Faults come one at a")
    add("time; after the load, the run waits until every task has ended (at most the task")
    add("timeout and a margin), then judges from the database, and the run's file storage")
    add("against `chat_attachments` (after `manage.py clean_files --older-than 0`).")
    add("")
    add(
        f"- Run: {kind}, started {started_at}, {wall:.0f} s in all; {cfg.users} users for "
        f"{cfg.load_seconds:g} s; `TASK_TIMEOUT_SECONDS={cfg.task_timeout}`, "
        f"`TASK_RECONCILE_AFTER_SECONDS={cfg.reconcile_after}`, "
        f"`TASKS_WORKER_HEARTBEAT_MAX_AGE={cfg.heartbeat_max_age}`."
    )
    add(f"- Commit: {git_head()}")
    add("")
    add("## Verdict")
    add("")
    add("| check | result | figures |")
    add("| --- | --- | --- |")
    for name, ok, figure in v["checks"] if "checks" in v else []:
        add(f"| {name} | {'pass' if ok else '**FAIL**'} | {figure} |")
    add("")
    add("## Fault timeline (seconds from the start of the load)")
    add("")
    add("| fault | from | to | down for /healthz |")
    add("| --- | ---: | ---: | --- |")
    for w in record.windows:
        end = f"{w['end']:.1f}" if w["end"] is not None else "-"
        add(f"| {w['kind']} | {w['start']:.1f} | {end} | {w['down'] or '-'} |")
    add("")
    add("## Figures")
    add("")
    s = layout.standin.counts
    rows = [
        ("sends tried", len(record.sends)),
        ("sends acknowledged (201)", len(v["acked"])),
        (
            "send answers by status",
            ", ".join(f"{k}: {n}" for k, n in sorted(v["send_codes"].items())),
        ),
        ("tasks in the database", len(v["rows"])),
        ("tasks completed", sum(1 for r in v["rows"] if r["status"] == "completed")),
        ("replies n8n produced (tasks)", len(v["produced"])),
        ("replies stored", sum(len(r["replies"]) for r in v["rows"])),
        ("duplicate replies (tasks)", len(v["duplicates"])),
        ("lost replies n8n produced", len(v["lost"])),
        ("stuck tasks", len(v["stuck"])),
        ("stand-in: dispatches accepted", s["dispatches"]),
        ("stand-in: dispatches answered 503 / hung", f"{s['dispatch_503']} / {s['dispatch_hung']}"),
        (
            "stand-in: callbacks delivered / failed tries / given up",
            f"{s['callbacks_sent']} / {s['callbacks_failed_tries']} / {s['callbacks_given_up']}",
        ),
        ("stand-in: public API reads (reconciliation)", s["api_reads"]),
        ("processes that exited by themselves", dict(layout.unexpected_exits) or 0),
        (
            "sends with files: tried / acknowledged (files)",
            f"{v['files']['sends']} / {v['files']['acked']} ({v['files']['acked_files']})",
        ),
        (
            "send-with-files answers by status",
            ", ".join(f"{k}: {n}" for k, n in sorted(v["files"]["codes"].items())),
        ),
        (
            "storage before clean_files: files / without a row / rows without a file",
            f"{v['files']['before']['files']} / {len(v['files']['before']['without_row'])} / "
            f"{len(v['files']['before']['without_file'])}",
        ),
        ("`manage.py clean_files --older-than 0` said", v["files"]["cleaned"].replace("|", "/")),
        (
            "storage after: files / rows / without a row / rows without a file",
            f"{v['files']['stored']} / {v['files']['rows']} / "
            f"{len(v['files']['without_row'])} / {len(v['files']['without_file'])}",
        ),
    ]
    add("| figure | value |")
    add("| --- | --- |")
    for name, value in rows:
        add(f"| {name} | {value} |")
    add("")
    add("### Failures by cause")
    add("")
    if v["failures"]:
        add("| cause | tasks |")
        add("| --- | ---: |")
        for c, n in v["failures"].most_common():
            add(f"| {c.replace('|', '/')} | {n} |")
    else:
        add("None.")
    add("")
    add("### HTTP 5xx and dropped connections by fault window")
    add("")
    add("A window counts from 1 s before the fault until 5 s after it ended.")
    add("")
    add("| window | request | answer | count |")
    add("| --- | --- | --- | ---: |")
    for (window, what, code), n in sorted(v["errors_by_window"].items(), key=str):
        add(f"| {window} | {what} | {code} | {n} |")
    for (window, what), n in sorted(v["conn_by_window"].items(), key=str):
        add(f"| {window} | {what} | connection dropped | {n} |")
    add("")
    if v["causes_500"]:
        add("500s by cause, from the Daphne logs (path, last frame in this project, exception):")
        add("")
        add("| path | where | exception | count |")
        add("| --- | --- | --- | ---: |")
        for (path, frame, exc), n in v["causes_500"].most_common(10):
            add(f"| {path} | {frame} | {exc.replace('|', '/')} | {n} |")
        add("")
    add("### Websocket connects by fault window")
    add("")
    add("| window | outcome | count |")
    add("| --- | --- | ---: |")
    for (window, outcome), n in sorted(v["sockets_by_window"].items()):
        add(f"| {window} | {outcome} | {n} |")
    add("")
    add("### /healthz against the real state")
    add("")
    add("`down` means PostgreSQL or Redis stopped, or the worker dead for longer than")
    add("`TASKS_WORKER_HEARTBEAT_MAX_AGE`; the seconds around each change are not judged.")
    add("")
    add("| expected | answered | probes |")
    add("| --- | --- | ---: |")
    for (expected, code), n in sorted(v["health"].items()):
        add(f"| {expected} | {code} | {n} |")
    add(f"\nProbes answered 200 while that process held open sockets: {v['up_with_sockets']}.")
    if v["disagree"]:
        add("")
        add("Disagreements, the first four of each kind (t, process, expected, answer, body):")
        add("")
        shown = Counter()
        for row in v["disagree"]:
            shown[(row[2], row[3])] += 1
            if shown[(row[2], row[3])] <= 4:
                add(f"- `{row}`")
    if v["lost"]:
        add("")
        add("Lost replies (task, status, cause), first ten:")
        add("")
        for row in v["lost"][:10]:
            add(f"- `{row}`")
    if v["unwanted"]:
        add("")
        add("Failures the harness did not cause on purpose (task, sent at s, window of the")
        add("send (with the task timeout as tail), cause, error details), first ten:")
        add("")
        for row in v["unwanted"][:10]:
            add(f"- `{row}`")
    if v["stories"]:
        add("")
        add("What happened to those tasks (seconds from the start of the load; `app` rows")
        add("are the task's events, `n8n` rows the stand-in's execution):")
        add("")
        for task_id, text in sorted(v["stories"].items()):
            add(f"- task {task_id}: {text}")
    if v["files"]["missing"] or v["files"]["without_row"] or v["files"]["without_file"]:
        add("")
        add("Files not whole (message, user, what), files without a row, rows without a")
        add("file, first ten each:")
        add("")
        for row in v["files"]["missing"][:10]:
            add(f"- `{row}`")
        for name in v["files"]["without_row"][:10]:
            add(f"- without a row: `{name}`")
        for name in v["files"]["without_file"][:10]:
            add(f"- without its file: `{name}`")
    if v["ended_badly"]:
        add("")
        add("Acknowledged sends that did not end well, first ten:")
        add("")
        for row in v["ended_badly"][:10]:
            add(f"- `{row}`")
    add("")
    return "\n".join(lines)


def retry_words(retry: dict) -> str:
    tail = "then goes on" if retry["continue"] else "then the execution fails"
    return f"{retry['tries']} tries {retry['wait']:g} s apart, {tail}"


def git_head() -> str:
    import subprocess

    result = subprocess.run(
        ["git", "log", "-1", "--format=%h %s"], cwd=BASE_DIR, capture_output=True, text=True
    )
    return result.stdout.strip()[:100] or "unknown"


# --- main ----------------------------------------------------------------------------------------


def main() -> int:
    cfg = config()
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    wall_start = time.monotonic()
    layout = Layout(cfg)

    def stop_on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop_on_signal)
    try:
        layout.start()
        *accounts, layout.mid_send = make_users(layout, cfg.users + 1)
        record = Record()
        until = cfg.load_seconds
        users = [
            UserLoop(i, a, layout.base_url, record, until, cfg.task_timeout)
            for i, a in enumerate(accounts)
        ]
        sockets = Sockets(accounts, layout.proxy_port, record, until)
        settle_limit = until + cfg.task_timeout + 30
        pollers = [HealthPoller(layout, name, record, settle_limit) for name in layout.daphne_ports]
        for thread in (*users, sockets, *pollers):
            thread.start()
        log(f"load: {cfg.users} users for {cfg.load_seconds:g} s")
        for offset, kind, seconds in cfg.faults:
            delay = offset - record.now()
            if delay > 0:
                time.sleep(delay)
            inject(layout, record, kind, seconds)
        while record.now() < until:
            time.sleep(0.5)
        log("load over; waiting for every task to end")
        for user in users:
            user.join(timeout=max(0.0, until + 10 - record.now()))
        while record.now() < settle_limit:
            remaining = open_tasks(layout)
            running = sum(
                1 for e in list(layout.standin.executions.values()) if e.status == "running"
            )
            if remaining == 0 and running == 0:
                break
            time.sleep(2)
        checks, report = verdict(layout, record, cfg, started_at, time.monotonic() - wall_start)
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    except Exception:  # noqa: BLE001 - the harness itself failed: say so, clean up
        traceback.print_exc()
        return 2
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip this
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        layout.cleanup()
        log("cleaned up: processes stopped, cluster removed")
    cfg.report.parent.mkdir(parents=True, exist_ok=True)
    cfg.report.write_text(report)
    print(report)
    log(f"written to {cfg.report.relative_to(BASE_DIR)}")
    failed = [name for name, ok, _ in checks if not ok]
    for name in failed:
        log(f"FAILED: {name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
