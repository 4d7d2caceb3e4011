"""CPU per streamed reply, the figure that says how many users a core serves.

The production layout on 127.0.0.1: two Daphne processes (A serves the page's
send and its websocket, B the webhook), the task worker in its own process
(it dispatches and reads n8n's streamed answer), PostgreSQL (the backends of
the bench's database) and a Redis server of its own (the machine's shared one
also serves other work). n8n is played by tests.standins.N8nStandin in
Streaming response mode: PIECES pieces of a few words, PIECE_GAP_SECONDS
apart, as a model writes them.

The CPU of each process is read from /proc/<pid>/stat (utime + stime, all its
threads) before and after REPLIES replies, each from its send to its
`completed` frame at a browser socket on the conversation, CONCURRENT at a
time; PostgreSQL backends are the server's processes whose title names the
bench's database (pooled connections: they live through the run; one born
during it counts from zero, one that ends is read by a sampler every 50 ms).
Beside it, the CPU of one trivial GET (`GET /`) measured the same way over
TRIVIAL_GETS requests, so the figure is a ratio that holds on another machine.
"""

import asyncio
import json
import os
import subprocess
import threading
import time
from pathlib import Path

REPLIES = int(os.environ.get("BENCH_CPU_REPLIES", "100"))
PIECES = 50
PIECE_GAP_SECONDS = 0.02
CONCURRENT = 10
TRIVIAL_GETS = 500
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def cpu_ms(pid):
    """utime + stime of a process (all its threads), in ms; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) * TICK_MS


def backends(database):
    """{pid: cpu ms} of the PostgreSQL backends serving `database` (their
    process title names the database after the user)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        words = title.split()
        # `postgres: [CLUSTER: ]USER DATABASE HOST(PORT) STATE`
        if words[:1] == ["postgres:"] and database in words[1:4]:
            cpu = cpu_ms(int(entry.name))
            if cpu is not None:
                found[int(entry.name)] = cpu
    return found


class Meter:
    """CPU of named processes and of a database's backends over a stretch of time."""

    def __init__(self, processes, database):
        self.processes = processes  # {name: pid}
        self.database = database

    def __enter__(self):
        self.start = {name: cpu_ms(pid) for name, pid in self.processes.items()}
        self.backends_start = backends(self.database)
        self.backends_last = dict(self.backends_start)
        self.running = True
        self.sampler = threading.Thread(target=self._sample, daemon=True)
        self.sampler.start()
        return self

    def _sample(self):
        while self.running:
            self.backends_last.update(backends(self.database))
            time.sleep(0.05)

    def __exit__(self, *exc):
        self.running = False
        self.sampler.join()
        self.backends_last.update(backends(self.database))
        self.by_process = {
            name: round(cpu_ms(pid) - self.start[name], 1) for name, pid in self.processes.items()
        }
        self.by_process["postgresql"] = round(
            sum(cpu - self.backends_start.get(pid, 0) for pid, cpu in self.backends_last.items()),
            1,
        )

    @property
    def total(self):
        return sum(self.by_process.values())


def _script():
    from tests.standins import chunk, item

    steps = [chunk("begin")]
    for i in range(PIECES):
        steps += [("sleep", PIECE_GAP_SECONDS), item(f"w{i} and a few more ")]
    return [*steps, chunk("end"), ("end",)]


async def _one_reply(browser, conversation, callback_base):
    """Send, read the streamed pieces' `message.delta` frames until the last
    one, then play the workflow's final node: a `completed` callback (to the
    other Daphne) with the whole text; done at the `completed` frame."""
    import requests

    from bench.streams import _frames_until
    from tasks.callbacks import make_token

    loop = asyncio.get_running_loop()
    last_piece = f"w{PIECES - 1} "
    async with browser.socket(conversation) as socket:
        sent = await loop.run_in_executor(None, browser.send, conversation)
        task_id = sent["task"]["id"]
        text = []

        def streamed(frame):
            if frame.get("type") == "message.delta" and frame.get("task_id") == task_id:
                text.append(frame["text"])
            return last_piece in "".join(text[-3:])

        async for _at, _frame in _frames_until(socket, streamed, timeout=60):
            pass
        answer = await loop.run_in_executor(
            None,
            lambda: requests.post(
                f"{callback_base}/tasks/{task_id}/webhook/",
                json={"status": "completed", "output": {"content": "".join(text)}},
                headers={"Authorization": f"Bearer {make_token(task_id)}"},
            ),
        )
        if answer.status_code != 200:
            raise RuntimeError(f"completed callback answered {answer.status_code}")

        def done(frame):
            task = frame.get("task") or {}
            return task.get("id") == task_id and task.get("status") in ("completed", "failed")

        status = None
        async for _at, frame in _frames_until(socket, done, timeout=60):
            status = (frame.get("task") or {}).get("status")
        return status


async def _replies(browser, conversations, callback_base):
    queue = list(conversations)
    statuses = []

    async def lane():
        while queue:
            try:
                statuses.append(await _one_reply(browser, queue.pop(), callback_base))
            except (TimeoutError, RuntimeError, OSError) as failed:
                # Counted as not completed: the CPU is divided by completed replies.
                statuses.append(f"error: {failed!r}"[:100])

    await asyncio.gather(*(lane() for _ in range(CONCURRENT)))
    return statuses


def _redis_server(port):
    return subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--daemonize", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


def run(server_factory, user, database):
    """The `cpu_per_reply` section of latest.json."""
    import requests
    from django.conf import settings

    from bench.streams import Browser
    from chat.models import Conversation
    from tests.standins import N8nStandin
    from tests.support import Worker, free_port

    redis_port = free_port()
    redis = _redis_server(redis_port)
    try:
        env = {"REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}
        conversations = [
            Conversation.objects.create(user=user, title=f"cpu {i}") for i in range(REPLIES)
        ]
        with N8nStandin(_script()) as n8n:
            env["N8N_BASE_URL"] = n8n.base_url
            worker_env = {**env, "LOG_LEVEL": "WARNING", "DEBUG": "0"}
            with server_factory(**env) as a, server_factory(**env) as b:
                env_b = {"PUBLIC_BASE_URL": b.base_url}
                poll = settings.TASKS_WORKER_POLL_SECONDS  # as in production
                with Worker(env={**worker_env, **env_b}, poll=poll) as worker:
                    processes = {
                        "daphne_a": a.process.pid,
                        "daphne_b": b.process.pid,
                        "worker": worker.process.pid,
                        "redis": redis.pid,
                    }
                    browser = Browser(a, user)
                    # Warm every process (imports, pools, the parser) before measuring.
                    warm = [Conversation.objects.create(user=user, title="warm") for _ in range(3)]
                    asyncio.run(_replies(browser, warm, b.base_url))
                    session = requests.Session()
                    for _ in range(50):
                        session.get(f"{a.base_url}/", allow_redirects=False)
                    time.sleep(1)
                    with Meter(processes, database) as idle:
                        time.sleep(2)
                    with Meter(processes, database) as trivial:
                        for _ in range(TRIVIAL_GETS):
                            session.get(f"{a.base_url}/", allow_redirects=False)
                    started = time.monotonic()
                    with Meter(processes, database) as replies:
                        statuses = asyncio.run(_replies(browser, conversations, b.base_url))
                    seconds = time.monotonic() - started
    finally:
        redis.terminate()
        redis.wait(5)
    completed = statuses.count("completed")
    per_reply = replies.total / max(completed, 1)
    per_get = trivial.total / TRIVIAL_GETS
    return {
        "ms": round(per_reply, 2),
        "trivial_get_cpu_ms": round(per_get, 3),
        "ratio": round(per_reply / per_get, 1) if per_get else None,
        "by_process": {
            name: round(cpu / max(completed, 1), 2) for name, cpu in replies.by_process.items()
        },
        "trivial_get_by_process": {
            name: round(cpu / TRIVIAL_GETS, 3) for name, cpu in trivial.by_process.items()
        },
        "replies": len(statuses),
        "completed": completed,
        "pieces_per_reply": PIECES,
        "seconds": round(seconds, 1),
        "idle_cpu_ms_per_s": {name: round(cpu / 2, 1) for name, cpu in idle.by_process.items()},
        "tick_ms": TICK_MS,
    }


if __name__ == "__main__":
    # This part alone: `.venv/bin/python -m bench.cpu`.
    from bench import run as bench

    bench.ensure_services()
    bench.fresh_database()
    bench.setup_django()
    print(json.dumps(run(bench.server, bench.make_user("bench"), bench.DB_NAME), indent=2))
