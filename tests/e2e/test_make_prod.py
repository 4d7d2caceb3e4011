"""`make prod`'s script from outside (scripts/prod.sh): nginx on PROD_PORT in
front of two Daphne processes and a worker under supervisord, on the test
database through a real PgBouncer in transaction mode (migrations straight to
PostgreSQL through DATABASE_DIRECT_URL) and Redis.

A page, a password login and a reply streamed over a websocket all pass
through nginx; the client address cannot be forged past it; a large body is
refused by nginx; hashed static files are cached for a year; a client that
never finishes its headers is cut off; nginx's access log follows LOG_FORMAT
without query strings; kill -9 of a Daphne or a worker is restarted within
20 s; SIGTERM stops everything it started; 40 concurrent sends of 4 users each end
with one reply, every task dispatched once.
"""

import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
import websockets

from tests import factories, support
from tests.e2e.pgbouncer_support import PgBouncer, need_pgbouncer
from tests.e2e.test_make_run import _log_in
from tests.support import BASE_DIR
from tests.ws_support import REAL_FRAME_TIMEOUT

# Both fixtures by name, so that CI's SQLite pass deselects these (tests/conftest.py).
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("postgres_only", "redis_url"),
]

START_SECONDS = 120
RESTART_WITHIN_SECONDS = 20  # the bound for a killed process to be back


class Prod:
    def __init__(self, folder, port, daphne_port, process):
        self.folder, self.port, self.daphne_port, self.process = folder, port, daphne_port, process
        self.base_url = f"http://127.0.0.1:{port}"

    def ctl(self, *args):
        return subprocess.run(
            [str(BASE_DIR / ".venv/bin/supervisorctl"), "-c", str(self.folder / "supervisord.conf"),
             *args],
            capture_output=True, text=True, timeout=30,
        ).stdout.strip()  # fmt: skip

    def pid(self, name):
        text = self.ctl("pid", name)
        return int(text) if text.isdigit() else 0

    def log(self, name):
        path = self.folder / "log" / name
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture(scope="module")
def prod(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        from django.db import connection

        support.need(
            connection.vendor == "postgresql", "needs PostgreSQL (make prod refuses SQLite)"
        )
        redis = os.environ.get("REDIS_URL", "")
        support.need(bool(redis), "needs Redis: set REDIS_URL=redis://… (CI runs with it)")
        support.need(
            bool(shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")),
            "needs Debian's nginx (apt-get install nginx; .ci/run installs it)",
        )
        need_pgbouncer()
        bouncer = PgBouncer(pool_size=10).start()
        folder = Path(tempfile.mkdtemp(prefix="prod-"))
        port, daphne_port = support.free_port(), support.free_port()
        env = dict(os.environ)
        for name in list(env):
            if name.startswith(("PROD_", "DEPLOY_")):
                del env[name]
        env.update(
            {
                # Through PgBouncer in transaction mode, migrations straight to PostgreSQL.
                "DATABASE_URL": bouncer.database_url(),
                "DATABASE_POOLER": "transaction",
                "DATABASE_DIRECT_URL": support.served_database_url(),
                "REDIS_URL": redis,
                "SECRET_KEY": secrets.token_urlsafe(40),
                "PROD_PORT": str(port),
                "PROD_DAPHNE": "2",
                "PROD_WORKERS": "1",
                "PROD_DAPHNE_PORT": str(daphne_port),
                "PROD_DIR": str(folder),
                "PROD_CLIENT_TIMEOUT": "2",
                "LOG_FORMAT": "json",
                # Plain HTTP on the loopback address: no TLS to redirect to.
                "SECURE_SSL_REDIRECT": "0",
                "SESSION_COOKIE_SECURE": "0",
                "CSRF_COOKIE_SECURE": "0",
                "DEV_RUNNER_STEP_SECONDS": "0.05",
                "DEV_RUNNER_WORD_SECONDS": "0.02",
            }
        )
        env.pop("DEBUG", None)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        output = open(folder / "make-prod.out", "wb")  # noqa: SIM115 - closed below
        process = subprocess.Popen(
            ["bash", "scripts/prod.sh"], cwd=BASE_DIR, env=env, stdout=output,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        running = Prod(folder, port, daphne_port, process)
        try:
            _wait_healthy(running, START_SECONDS)
            yield running
        finally:
            _stop(process)
            output.close()
            bouncer.stop()
            from django.db import connections

            connections.close_all()
            shutil.rmtree(folder, ignore_errors=True)


def _stop(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def _wait_healthy(prod, seconds):
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        if prod.process.poll() is not None:
            raise AssertionError(f"make prod exited: {(prod.folder / 'make-prod.out').read_text()}")
        try:
            last = requests.get(f"{prod.base_url}/healthz", timeout=2)
            if last.status_code == 200:
                return
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"no healthy answer through nginx in {seconds}s: {last}")


def _access_lines(prod):
    return [json.loads(line) for line in prod.log("nginx-access.log").splitlines() if line]


def test_a_reply_streams_through_nginx_to_the_page(prod, make_user, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    user = make_user("operator")
    conversation = factories.conversation(user)
    session = requests.Session()
    token = _log_in(session, prod.base_url, "operator")
    page = session.get(f"{prod.base_url}/chat/{conversation.pk}/", timeout=10)
    assert page.status_code == 200 and "<form" in page.text

    async def send_and_watch():
        async with websockets.connect(
            f"ws://127.0.0.1:{prod.port}/ws/chat/{conversation.pk}/",
            origin=prod.base_url,
            additional_headers={"Cookie": f"sessionid={session.cookies['sessionid']}"},
            proxy=None,
            open_timeout=REAL_FRAME_TIMEOUT,
        ) as ws:
            answer = await asyncio.to_thread(
                session.post,
                f"{prod.base_url}/chat/{conversation.pk}/messages/",
                data={"content": "Are you behind nginx?"},
                headers={"X-CSRFToken": token, "Referer": f"{prod.base_url}/chat/"},
                timeout=10,
            )
            assert answer.status_code in (200, 201, 302), answer.text[:300]
            kinds = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                frame = json.loads(await asyncio.wait_for(ws.recv(), REAL_FRAME_TIMEOUT))
                kinds.append(frame["type"])
                if frame["type"] == "message.created" and frame["message"]["role"] == "assistant":
                    return kinds
            raise AssertionError(kinds)

    kinds = asyncio.run(send_and_watch())
    assert "message.delta" in kinds  # streamed, piece by piece, through the proxy
    upgraded = [line for line in _access_lines(prod) if line["http_status"] == 101]
    assert upgraded and upgraded[-1]["path"] == f"/ws/chat/{conversation.pk}/"


def test_the_client_address_is_the_proxys_to_see_not_the_clients_to_say(prod):
    answer = requests.get(
        f"{prod.base_url}/healthz",
        headers={"X-Real-IP": "203.0.113.9", "X-Forwarded-For": "203.0.113.9"},
        timeout=10,
    )
    assert answer.status_code == 200
    app_lines = "".join(prod.log(f"daphne-{prod.daphne_port + i}.log") for i in range(2))
    assert '"client": "127.0.0.1"' in app_lines
    assert "203.0.113.9" not in app_lines


def test_nginx_refuses_a_body_over_its_limit_before_daphne_reads_it(prod):
    answer = requests.post(
        f"{prod.base_url}/accounts/login/", data=b"x" * (4 * 1024 * 1024), timeout=30
    )
    assert answer.status_code == 413
    assert answer.text == "The request is too large.\n"  # plain words, not nginx's page


def test_the_send_form_takes_bodies_as_large_as_the_attachment_limits(prod):
    """4 MiB on the one URL that takes files gets past nginx to the app (whose
    answer is its own: no session and no CSRF token), not nginx's 413."""
    answer = requests.post(
        f"{prod.base_url}/chat/1/messages/",
        data=b"x" * (4 * 1024 * 1024),
        headers={"Content-Type": "application/octet-stream"},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code in (302, 403)  # the app's: to log in, or CSRF


def test_hashed_static_files_are_cached_for_a_year(prod):
    page = requests.get(f"{prod.base_url}/accounts/login/", timeout=10).text
    asset = re.search(r'/static/[^"]+\.[0-9a-f]{12}\.(?:js|css)', page).group(0)
    answer = requests.get(f"{prod.base_url}{asset}", timeout=10)
    assert answer.status_code == 200
    assert "max-age=31536000" in answer.headers["Cache-Control"]
    assert "immutable" in answer.headers["Cache-Control"]


def test_a_client_that_never_finishes_its_headers_is_cut_off(prod):
    with socket.create_connection(("127.0.0.1", prod.port), timeout=30) as slow:
        slow.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1\r\n")
        # PROD_CLIENT_TIMEOUT is 2 s here: nginx drops the connection with no
        # answer (reset_timedout_connection: a reset), where Daphne alone held
        # it for ever.
        try:
            assert slow.recv(1024) == b""
        except ConnectionResetError:
            pass


def test_the_access_log_is_json_without_query_strings(prod):
    requests.get(f"{prod.base_url}/healthz?token=s3cr3t-in-query", timeout=10)
    lines = _access_lines(prod)
    mine = [line for line in lines if line["path"] == "/healthz"]
    assert mine and mine[-1]["logger"] == "nginx.access" and mine[-1]["method"] == "GET"
    assert isinstance(mine[-1]["duration_ms"], int)
    assert "s3cr3t" not in prod.log("nginx-access.log")


def test_forty_concurrent_sends_of_four_users_each_get_one_reply_dispatched_once(
    prod, make_user, settings
):
    from concurrent.futures import ThreadPoolExecutor

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    sessions = []
    for index in range(4):
        user = make_user(f"sender{index}")
        # One reply at a time per conversation (the product's rule): ten each.
        conversations = [factories.conversation(user).pk for _ in range(10)]
        http = requests.Session()
        csrf = _log_in(http, prod.base_url, user.username)
        sessions.append((http, csrf, conversations))

    def send(n):
        http, csrf, conversations = sessions[n % 4]
        conversation = conversations[n // 4]
        answer = http.post(
            f"{prod.base_url}/chat/{conversation}/messages/",
            data={"content": f"concurrent {n}"},
            headers={"Accept": "application/json", "X-CSRFToken": csrf,
                     "Referer": prod.base_url},
            timeout=30,
        )  # fmt: skip
        assert answer.status_code == 201, answer.text[:300]
        return answer.json()["task"]["id"]

    with ThreadPoolExecutor(40) as pool:
        task_ids = list(pool.map(send, range(40)))
    assert len(set(task_ids)) == 40
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pending = support.one(
            "SELECT count(*) AS n FROM async_tasks WHERE id = ANY(%s) AND status NOT IN "
            "('completed', 'failed', 'timeout', 'cancelled')",
            [task_ids],
        )["n"]
        if not pending:
            break
        time.sleep(0.5)
    rows = support.sql(
        "SELECT t.id, t.status, count(m.id) AS replies FROM async_tasks t LEFT JOIN "
        "chat_messages m ON m.async_task_id = t.id AND m.role = 'assistant' "
        "WHERE t.id = ANY(%s) GROUP BY t.id",
        [task_ids],
    )
    assert {(row["status"], row["replies"]) for row in rows} == {("completed", 1)}
    accepted = Counter()
    for name in [f"daphne-{prod.daphne_port + i}.log" for i in range(2)] + ["tasks_worker-0.log"]:
        for line in prod.log(name).splitlines():
            if line.startswith("{") and '"task.dispatch"' in line:
                record = json.loads(line)
                if record.get("outcome") == "accepted":
                    accepted[record["task_id"]] += 1
    assert {task_id: accepted[task_id] for task_id in task_ids} == dict.fromkeys(task_ids, 1)


@pytest.mark.parametrize("name", ["daphne:daphne-{daphne_port}", "tasks_worker:tasks_worker-0"])
def test_a_killed_process_is_back_within_twenty_seconds(prod, name):
    name = name.format(daphne_port=prod.daphne_port)
    before = prod.pid(name)
    assert before > 0, prod.ctl("status")
    os.kill(before, signal.SIGKILL)
    killed = time.monotonic()
    while time.monotonic() - killed < RESTART_WITHIN_SECONDS:
        now = prod.pid(name)
        if now and now != before and "RUNNING" in prod.ctl("status", name):
            break
        time.sleep(0.2)
    assert prod.pid(name) not in (0, before), prod.ctl("status")
    assert "RUNNING" in prod.ctl("status", name)
    # Served throughout by the other Daphne; healthy again with both.
    _wait_healthy(prod, RESTART_WITHIN_SECONDS)


def test_sigterm_stops_everything_it_started(prod):
    pids = [prod.pid(name) for name in ("nginx", f"daphne:daphne-{prod.daphne_port}")]
    assert all(pids)
    _stop(prod.process)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{prod.base_url}/healthz", timeout=2)
