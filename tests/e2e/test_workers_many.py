"""Four `tasks_worker` processes on one PostgreSQL database, under load, count right.

Tasks arrive before and while four real worker processes run against a
stand-in n8n (tests/standins.py) that refuses the first try of every third
task (503, so it is retried) and answers the public API's execution question
with a finished run. Counted from n8n's side and from the database:
- each attempt is dispatched once: n8n saw each task exactly as many times as
  its `attempts` say, and accepted it exactly once;
- each overdue task is timed out once: one `timeout` event per task;
- each task is reconciled once: n8n was asked about each execution once, and
  each task has one `completed` event.
"""

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from tasks.models import AsyncTask, AsyncTaskEvent
from tests import factories, support
from tests.standins import Answer, N8nStandin

pytestmark = pytest.mark.django_db(transaction=True)

WORKERS = 4
BEFORE, WHILE, OVERDUE = 60, 60, 30
WAIT_SECONDS = 120
RESULT = {"status": "completed", "output": {"content": "from the run data", "thinking": ""}}


class CountingN8n:
    """What the workers asked of n8n, per task and per execution."""

    def __init__(self):
        self.lock = threading.Lock()
        self.arrivals = Counter()
        self.accepted = Counter()
        self.asked = Counter()

    def answer(self, request):
        if request.method == "POST" and request.path.startswith("/webhook/"):
            task_id = request.json()["task_id"]
            with self.lock:
                self.arrivals[task_id] += 1
                refuse = task_id % 3 == 0 and self.arrivals[task_id] == 1
                if not refuse:
                    self.accepted[task_id] += 1
            if refuse:
                return Answer(503, {"message": "busy"})
            return Answer(200, {"executionId": f"run{task_id}"})
        if request.method == "GET" and request.path.startswith("/api/v1/executions/"):
            execution = request.path.rsplit("/", 1)[1]
            with self.lock:
                self.asked[execution] += 1
            run_data = {"Result": [{"data": {"main": [[{"json": RESULT}]]}}]}
            return Answer(
                200,
                {
                    "id": execution,
                    "finished": True,
                    "status": "success",
                    "data": {"resultData": {"runData": run_data}},
                },
            )
        return Answer(404, {"message": "not found"})


def _load_tasks(user, count):
    return [
        factories.task(user, task_type="load", workflow_id="load", input_data={"n": n}).pk
        for n in range(count)
    ]


def test_four_workers_dispatch_time_out_and_reconcile_each_task_once(postgres_only, user):
    counting = CountingN8n()
    overdue = [
        factories.task(
            user, task_type="load", status="processing",
            created_at=timezone.now() - timedelta(hours=1),
        ).pk
        for _ in range(OVERDUE)
    ]  # fmt: skip
    load = _load_tasks(user, BEFORE)
    with N8nStandin(handler=counting.answer) as n8n:
        env = {
            "N8N_BASE_URL": n8n.base_url,
            "N8N_API_KEY": "test-key",
            "TASK_STREAM_READER": "0",
            "TASK_DISPATCH_BACKOFF_SECONDS": "0.2",
            "TASK_DISPATCH_BACKOFF_MAX_SECONDS": "0.5",
            "TASK_RECONCILE_AFTER_SECONDS": "5",
        }
        workers = [support.Worker(env=env, poll=0.05) for _ in range(WORKERS)]
        for index, worker in enumerate(workers):
            worker.log_path = worker.log_path.with_name(f"worker-many-{index}.log")
        try:
            for worker in workers:
                worker.start()
            load += _load_tasks(user, WHILE)  # more work while the four race
            deadline = time.monotonic() + WAIT_SECONDS
            while time.monotonic() < deadline:
                unfinished = AsyncTask.objects.filter(pk__in=load + overdue).exclude(
                    status__in=["completed", "timeout"]
                )
                if not unfinished.exists():
                    break
                time.sleep(0.5)
        finally:
            for worker in workers:
                worker.stop()

    statuses = Counter(AsyncTask.objects.filter(pk__in=load).values_list("status", flat=True))
    assert statuses == Counter({"completed": len(load)})
    attempts = dict(AsyncTask.objects.filter(pk__in=load).values_list("pk", "attempts"))
    assert dict(counting.arrivals) == attempts  # each attempt reached n8n once
    assert counting.accepted == Counter({pk: 1 for pk in load})
    assert sum(attempts.values()) == len(load) + len([pk for pk in load if pk % 3 == 0])
    assert counting.asked == Counter({f"run{pk}": 1 for pk in load})  # reconciled once
    completed = Counter(
        AsyncTaskEvent.objects.filter(task_id__in=load, status="completed").values_list(
            "task_id", flat=True
        )
    )
    assert completed == Counter({pk: 1 for pk in load})
    timeouts = Counter(
        AsyncTaskEvent.objects.filter(task_id__in=overdue, status="timeout").values_list(
            "task_id", flat=True
        )
    )
    assert timeouts == Counter({pk: 1 for pk in overdue})  # timed out once each
