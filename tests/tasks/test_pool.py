"""The bounded dispatch pool: waiting until its jobs are done."""

import threading

import pytest

from tasks import pool, worker
from tasks.models import AsyncTask
from tests.task_support import FakeN8n, chat_task, wait_for


def test_wait_until_idle_waits_for_every_job_handed_to_the_pool():
    release = threading.Event()
    started = threading.Event()

    def job(_task_id):
        started.set()
        release.wait(10)

    assert pool.submit(job, 1) is not None
    assert started.wait(5)
    assert not pool.wait_until_idle(0.05)  # still running
    release.set()
    assert pool.wait_until_idle(5)


def test_a_failing_job_counts_as_finished():
    def job(_task_id):
        raise ValueError("boom")

    future = pool.submit(job, 1)
    assert future.result(5) is None
    assert pool.wait_until_idle(5)


@pytest.mark.django_db(transaction=True)
def test_a_stopping_worker_lets_its_dispatches_in_flight_record_their_outcome(
    dispatch_settings, user
):
    """n8n answers half a second after the dispatch; the worker is told to stop
    meanwhile. When its loop returns the dispatch's answer is recorded, not
    left for a process that is about to exit."""
    task = chat_task(user, text="slow n8n")
    loop = worker.Worker(poll_seconds=0.05)
    with FakeN8n([(200, {"executionId": "7"}, 0.5)]) as n8n:
        dispatch_settings.N8N_BASE_URL = n8n.base_url
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        wait_for(lambda: n8n.requests, timeout=5, what="the dispatch")
        loop.stop()
        thread.join(timeout=15)
        assert not thread.is_alive()
    assert AsyncTask.objects.get(pk=task.pk).status == "processing"
