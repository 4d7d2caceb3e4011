"""`python -m bench.prod_capacity`: where `make prod`'s layout saturates.

Runs scripts/prod.sh (nginx, PROD_DAPHNE Daphne processes, one worker under
supervisord) on a database of its own, with chaos's stand-in n8n (a
`processing` and a `completed` callback per dispatch, the model's pause
CAPACITY_MODEL_SECONDS), once per Daphne count in CAPACITY_DAPHNE (1,2,4).
CAPACITY_USERS people (24) each send a message, wait for its task to finish
(watched in the database by one poller, as a page would by its websocket)
and send the next, with no pause: a closed loop that finds the replies per
second where the layout saturates. Over the measured window it reads, per
process kind, the CPU seconds spent (utime + stime from /proc) and the
resident memory, PostgreSQL's committed transactions and Redis's commands,
each divided by the replies finished. The machine is shared: the load
generator, PostgreSQL and Redis run on the same cores; PostgreSQL's and
Redis's CPU is every process of theirs on the machine.

Environment: CAPACITY_DATABASE (default postgres://postgres@127.0.0.1:5432/
chatproject_prod_capacity, created and dropped), CAPACITY_REDIS_URL
(redis://127.0.0.1:6379/12), CAPACITY_SECONDS (30, after 8 s of warm-up).
"""

import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import redis
import requests

BASE_DIR = Path(__file__).resolve().parent.parent
DATABASE = os.environ.get(
    "CAPACITY_DATABASE", "postgres://postgres@127.0.0.1:5432/chatproject_prod_capacity"
)
REDIS_URL = os.environ.get("CAPACITY_REDIS_URL", "redis://127.0.0.1:6379/12")
USERS = int(os.environ.get("CAPACITY_USERS", 24))
SECONDS = float(os.environ.get("CAPACITY_SECONDS", 30))
WARM_SECONDS = 8.0
DAPHNE_COUNTS = [int(n) for n in os.environ.get("CAPACITY_DAPHNE", "1,2,4").split(",")]
MODEL_SECONDS = (0.05, 0.1)
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def admin_dsn():
    base, _, name = DATABASE.rpartition("/")
    return f"{base}/postgres", name


def recreate_database():
    dsn, name = admin_dsn()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database():
    dsn, name = admin_dsn()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- processes and what they cost ---------------------------------------------------------


def proc_cpu(pid):
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


def proc_rss_mib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def all_processes():
    """{pid: (name, ppid)} of every process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        found[int(entry.name)] = (name, ppid)
    return found


def kinds(supervisor_pid):
    """{kind: [pids]}: nginx, daphne, worker (children of supervisord), postgres, redis."""
    processes = all_processes()
    children = {pid for pid, (_, ppid) in processes.items() if ppid == supervisor_pid}
    grouped = {"nginx": [], "daphne": [], "worker": [], "postgres": [], "redis": []}
    for pid in children:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        if "nginx" in cmdline:
            grouped["nginx"] += [pid] + [p for p, (_, pp) in processes.items() if pp == pid]
        elif "daphne" in cmdline:
            grouped["daphne"].append(pid)
        elif "tasks_worker" in cmdline:
            grouped["worker"].append(pid)
    for pid, (name, _) in processes.items():
        if name in ("postgres", "postmaster"):
            grouped["postgres"].append(pid)
        elif name.startswith("redis-server"):
            grouped["redis"].append(pid)
    return grouped


def cpu_of(grouped):
    return {kind: sum(proc_cpu(pid) for pid in pids) for kind, pids in grouped.items()}


# --- the people -----------------------------------------------------------------------------


def make_users(env, count):
    os.environ.update({k: v for k, v in env.items() if k in ("DATABASE_URL", "SECRET_KEY")})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    os.environ["DEBUG"] = "1"
    sys.path.insert(0, str(BASE_DIR))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connections
    from django.test import Client

    from chat.models import Conversation

    users = []
    for i in range(count):
        user = get_user_model().objects.create_user(f"cap{i}", password=secrets.token_hex(12))
        conversation = Conversation.objects.create(user=user, title=f"capacity {i}")
        client = Client()
        client.force_login(user)
        users.append((client.cookies["sessionid"].value, conversation.pk))
    connections.close_all()
    return users


class Finished:
    """One poller of the database: which tasks have finished."""

    def __init__(self):
        self.done = set()
        self.cond = threading.Condition()
        self.running = True
        threading.Thread(target=self.poll, daemon=True).start()

    def poll(self):
        with psycopg.connect(DATABASE, autocommit=True) as conn:
            last = 0
            while self.running:
                rows = conn.execute(
                    "SELECT id FROM async_tasks WHERE id > %s AND status IN "
                    "('completed', 'failed', 'timeout', 'cancelled')",
                    [last - 1000],
                ).fetchall()
                with self.cond:
                    self.done.update(r[0] for r in rows)
                    if rows:
                        last = max(last, max(r[0] for r in rows))
                    self.cond.notify_all()
                time.sleep(0.05)

    def wait(self, task_id, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while task_id not in self.done and time.monotonic() < deadline:
                self.cond.wait(0.5)
        return task_id in self.done


def person(base_url, session, conversation, finished, until, results):
    http = requests.Session()
    csrf = secrets.token_hex(16)
    http.cookies.set("sessionid", session)
    http.cookies.set("csrftoken", csrf)
    n = 0
    while time.monotonic() < until:
        n += 1
        try:
            answer = http.post(
                f"{base_url}/chat/{conversation}/messages/",
                data={"content": f"capacity message {n}"},
                headers={"Accept": "application/json", "X-CSRFToken": csrf, "Referer": base_url},
                timeout=(3, 30),
            )
        except requests.RequestException:
            results["errors"] += 1
            time.sleep(0.5)
            continue
        if answer.status_code != 201:
            results["errors"] += 1
            time.sleep(0.5)
            continue
        finished.wait(answer.json()["task"]["id"], 60)


# --- one run ---------------------------------------------------------------------------------


def run(daphne, users_cache, n8n_port):
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="capacity-"))
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": DATABASE,
            "REDIS_URL": REDIS_URL,
            "SECRET_KEY": "capacity-" + "k" * 50,
            "PROD_PORT": str(port),
            "PROD_DAPHNE_PORT": str(free_port()),
            "PROD_DAPHNE": str(daphne),
            "PROD_WORKERS": "1",
            "PROD_DIR": str(folder),
            "PROD_CONN_PER_CLIENT": "10000",
            "SECURE_SSL_REDIRECT": "0",
            "SESSION_COOKIE_SECURE": "0",
            "CSRF_COOKIE_SECURE": "0",
            "N8N_BASE_URL": f"http://127.0.0.1:{n8n_port}",
            "N8N_API_KEY": "capacity",
            "CHAT_RATE_LIMIT": "",
            "LOG_LEVEL": "WARNING",
        }
    )
    env.pop("DEBUG", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    base_url = f"http://127.0.0.1:{port}"
    out = open(folder / "prod.out", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        ["bash", "scripts/prod.sh"], cwd=BASE_DIR, env=env, stdout=out,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError(f"make prod did not come up: {(folder / 'prod.out').read_text()}")
        if not users_cache:
            users_cache.extend(make_users(env, USERS))
        supervisor = int((folder / "run" / "supervisord.pid").read_text())
        finished = Finished()
        results = {"errors": 0}
        until = time.monotonic() + WARM_SECONDS + SECONDS
        people = [
            threading.Thread(
                target=person, args=(base_url, s, c, finished, until, results), daemon=True
            )
            for s, c in users_cache
        ]
        for thread in people:
            thread.start()
        time.sleep(WARM_SECONDS)
        grouped = kinds(supervisor)
        pg = psycopg.connect(DATABASE, autocommit=True)
        r = redis.Redis.from_url(REDIS_URL)

        def counters():
            done = pg.execute(
                "SELECT count(*) FROM async_tasks WHERE status = 'completed'"
            ).fetchone()[0]
            commits = pg.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
            ).fetchone()[0]
            return done, commits, r.info("stats")["total_commands_processed"]

        cpu0, (done0, commits0, redis0), t0 = cpu_of(grouped), counters(), time.monotonic()
        time.sleep(SECONDS)
        cpu1, (done1, commits1, redis1), t1 = cpu_of(grouped), counters(), time.monotonic()
        rss = {kind: sum(proc_rss_mib(pid) for pid in pids) for kind, pids in grouped.items()}
        for thread in people:
            thread.join(70)
        finished.running = False
        pg.close()
        replies = done1 - done0
        wall = t1 - t0
        return {
            "daphne": daphne,
            "replies": replies,
            "replies_per_s": round(replies / wall, 2),
            "errors": results["errors"],
            "cpu_s": {k: round(cpu1[k] - cpu0[k], 2) for k in cpu0},
            "cpu_ms_per_reply": {
                k: round((cpu1[k] - cpu0[k]) * 1000 / max(replies, 1), 2) for k in cpu0
            },
            "cores_busy": {k: round((cpu1[k] - cpu0[k]) / wall, 2) for k in cpu0},
            "rss_mib": {
                k: round(v, 1) for k, v in rss.items() if k in ("nginx", "daphne", "worker")
            },
            "pg_commits_per_reply": round((commits1 - commits0) / max(replies, 1), 1),
            "redis_commands_per_reply": round((redis1 - redis0) / max(replies, 1), 1),
        }
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        out.close()


def main():
    sys.path.insert(0, str(BASE_DIR))
    from chaos.standin import StandInN8n

    random.seed(1)
    recreate_database()
    n8n_port = free_port()
    standin = StandInN8n(n8n_port, "capacity", model_seconds=MODEL_SECONDS)
    standin.start()
    users = []
    try:
        for daphne in DAPHNE_COUNTS:
            figures = run(daphne, users, n8n_port)
            print(json.dumps(figures), flush=True)
    finally:
        standin.stop()
        drop_database()


if __name__ == "__main__":
    main()
