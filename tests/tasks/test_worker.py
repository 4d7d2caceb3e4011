"""The worker: durability (the crash case), racing claimers, timeouts, the command."""

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from tasks import services, worker
from tasks.models import AsyncTask
from tests import factories, support
from tests.support import one, sql
from tests.task_support import FakeN8n, chat_task, wait_for, wait_for_status


@pytest.mark.django_db
def test_a_committed_task_whose_process_died_is_dispatched_by_worker_once(
    dispatch_settings, user, django_capture_on_commit_callbacks, capsys
):
    from chat.replies.tasktypes import CHAT

    # The creating process dies right after the commit: its on-commit dispatch never runs.
    with django_capture_on_commit_callbacks(execute=False):
        task = services.create_task(user=user, task_type=CHAT, input_data={"message": "hi"})
    assert AsyncTask.objects.get(pk=task.pk).status == "pending"
    with FakeN8n([(200, {"executionId": "1"}, 0)]) as n8n:
        dispatch_settings.N8N_BASE_URL = n8n.base_url
        call_command("tasks_worker", "--once")
    assert "dispatched 1" in capsys.readouterr().out
    assert [r["body"]["task_id"] for r in n8n.requests] == [task.pk]
    task.refresh_from_db()
    assert (task.status, task.current_step, task.n8n_execution_id) == (
        "processing",
        "dispatched",
        "1",
    )


@pytest.mark.django_db
def test_worker_pass_retries_due_dispatches_and_leaves_the_others(dispatch_settings, user):
    due = chat_task(user)
    later = chat_task(user)
    AsyncTask.objects.filter(pk=due.pk).update(attempts=1, next_attempt_at=timezone.now())
    AsyncTask.objects.filter(pk=later.pk).update(
        attempts=1, next_attempt_at=timezone.now() + timedelta(minutes=5)
    )
    with FakeN8n([(200, {}, 0)]) as n8n:
        dispatch_settings.N8N_BASE_URL = n8n.base_url
        counts = worker.Worker(poll_seconds=0).run_once()
    assert counts["dispatched"] == 1
    assert [r["body"]["task_id"] for r in n8n.requests] == [due.pk]
    assert AsyncTask.objects.get(pk=later.pk).status == "pending"


@pytest.mark.django_db
def test_worker_pass_turns_overdue_tasks_into_timeout(dispatch_settings, user):
    dispatch_settings.TASK_TIMEOUT_SECONDS = 30
    task = chat_task(user)
    AsyncTask.objects.filter(pk=task.pk).update(
        status="processing", created_at=timezone.now() - timedelta(minutes=1)
    )
    counts = worker.Worker(poll_seconds=0).run_once()
    assert counts["expired"] == 1
    task.refresh_from_db()
    assert task.status == "timeout"
    assert task.status_message.startswith("No answer within")


@pytest.mark.django_db(transaction=True)
def test_racing_claimers_claim_one_task_once(user):
    task = chat_task(user)
    barrier = threading.Barrier(8)
    results = []

    def race():
        from django.db import connection

        try:
            barrier.wait()
            results.append(services.claim(task.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    assert AsyncTask.objects.get(pk=task.pk).attempts == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_dispatch_every_task_once(dispatch_settings, user):
    tasks = [chat_task(user, f"message {n}") for n in range(12)]
    with FakeN8n([(200, {}, 0.02)]) as n8n:
        dispatch_settings.N8N_BASE_URL = n8n.base_url
        barrier = threading.Barrier(2)

        def run_worker():
            from django.db import connection

            try:
                barrier.wait()
                worker.Worker(poll_seconds=0).run_once()
            finally:
                connection.close()

        threads = [threading.Thread(target=run_worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    sent = Counter(r["body"]["task_id"] for r in n8n.requests)
    assert sent == Counter({task.pk: 1 for task in tasks})
    assert set(AsyncTask.objects.values_list("status", flat=True)) == {"processing"}


@pytest.mark.django_db(transaction=True)
def test_the_web_dispatcher_and_a_worker_racing_dispatch_once(dispatch_settings, user):
    from chat.replies.tasktypes import CHAT
    from tests.task_support import wait_for_status

    with FakeN8n([(200, {}, 0.05)]) as n8n:
        dispatch_settings.N8N_BASE_URL = n8n.base_url
        # No outer transaction: the commit happens at once and the pool starts.
        task = services.create_task(user=user, task_type=CHAT, input_data={"message": "hi"})
        worker.Worker(poll_seconds=0).run_once()
        wait_for_status(task.pk, "processing")
    assert [r["body"]["task_id"] for r in n8n.requests] == [task.pk]


@pytest.mark.django_db(transaction=True)
def test_the_command_stops_gracefully_on_sigterm():
    server_env = support.Server().env()  # DATABASE_URL of the test database
    process = subprocess.Popen(
        [sys.executable, "manage.py", "tasks_worker", "--poll", "0.1"],
        cwd=support.BASE_DIR,
        env=server_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        first = process.stdout.readline()
        assert "tasks worker running" in first
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert "tasks worker stopped" in output


@pytest.mark.django_db(transaction=True)
def test_the_in_process_worker_starts_once(monkeypatch):
    monkeypatch.setattr(worker, "in_process", None)
    first = worker.start_in_process_worker()
    try:
        assert worker.start_in_process_worker() is first
        assert first.thread.is_alive()
        assert first.thread.daemon
    finally:
        first.stop()
        first.thread.join(timeout=10)
    assert not first.thread.is_alive()


@pytest.mark.django_db(transaction=True)
def test_a_hanging_n8n_does_not_delay_other_tasks_timeouts(dispatch_settings, user):
    """n8n accepts the dispatch and never answers (within the read time-out):
    the worker loop goes on, and another task times out within a poll."""
    dispatch_settings.TASK_DISPATCH_READ_TIMEOUT = 8.0
    dispatch_settings.TASK_TIMEOUT_SECONDS = 60
    hanging = chat_task(user, text="hangs")
    waiting = chat_task(user, text="times out")
    # `waiting` was dispatched earlier; it becomes overdue one second from now.
    AsyncTask.objects.filter(pk=waiting.pk).update(
        status="processing", created_at=timezone.now() - timedelta(seconds=59)
    )
    loop = worker.Worker(poll_seconds=0.1)
    with FakeN8n([(200, {"executionId": "1"}, 6.0)]) as n8n:
        dispatch_settings.N8N_BASE_URL = n8n.base_url
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        try:
            wait_for(lambda: n8n.requests, timeout=5, what="the hanging dispatch")
            # Overdue at +1 s; the hanging answer comes at +6 s at the earliest.
            wait_for_status(waiting.pk, "timeout", timeout=3.0)
            assert AsyncTask.objects.get(pk=hanging.pk).status == "pending"  # still waiting
        finally:
            loop.stop()
            thread.join(timeout=5)
        wait_for_status(hanging.pk, "processing", timeout=10)


def test_tasks_worker_once_dispatches_and_times_out_then_exits(transactional_db, fake_n8n, user):
    # A task written by an n8n Postgres node (plain SQL), one overdue, one in time.
    sql(
        "INSERT INTO async_tasks (task_type, workflow_id, input_data, created_by) "
        "VALUES (%s, %s, %s, %s)",
        ["chat", "chat-reply", json.dumps({"message": "from a Postgres node"}), user.pk],
    )
    fresh = one("SELECT id FROM async_tasks WHERE created_by = %s", [user.pk])["id"]
    overdue = factories.task(user, status="processing")
    in_time = factories.task(user, status="processing")
    AsyncTask.objects.filter(pk=overdue.pk).update(  # setup only
        created_at=timezone.now() - timedelta(seconds=121)
    )
    AsyncTask.objects.filter(pk=in_time.pk).update(
        created_at=timezone.now() - timedelta(seconds=100)
    )
    webhook = fake_n8n.expect_request("/webhook/chat-reply", method="POST")
    webhook.respond_with_json({"executionId": "e-1"})
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": support.served_database_url(),
            "DEBUG": "1",
            "N8N_BASE_URL": fake_n8n.url_for("").rstrip("/"),
            "PUBLIC_BASE_URL": "http://app.example.test",
            "TASK_TIMEOUT_SECONDS": "120",
        }
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "tasks_worker", "--once"],
        cwd=support.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "expired 1" in result.stdout and "dispatched 1" in result.stdout
    [(request, _response)] = fake_n8n.log
    body = request.get_json()
    assert body["task_id"] == fresh
    assert body["callback_url"] == f"http://app.example.test/tasks/{fresh}/webhook/"
    assert body["input"] == {"message": "from a Postgres node"}
    statuses = dict(AsyncTask.objects.values_list("pk", "status"))
    assert statuses == {fresh: "processing", in_time.pk: "processing", overdue.pk: "timeout"}
    assert AsyncTask.objects.get(pk=overdue.pk).processing_completed_at is not None
