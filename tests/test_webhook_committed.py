"""The webhook's answers again, with every request committing for real.

Inside the test transaction of tests/test_webhook.py a `processing` callback
takes the locked path; outside any transaction (as in production) it takes the
one-statement path of tasks.services._apply_progress. Both must answer alike.
"""

import pytest

from tests import test_webhook
from tests.task_support import chat_task, post_callback
from tests.test_webhook import *  # noqa: F403 - the same specification, re-collected

pytestmark = pytest.mark.django_db(transaction=True)

# on_commit callbacks run at once outside a transaction: nothing to capture.
del test_every_applied_change_bumps_the_version_and_publishes_after_commit  # noqa: F821


def test_a_processing_callback_is_one_statement(client, user, django_assert_num_queries):
    task = chat_task(user)
    with django_assert_num_queries(1):
        response = post_callback(client, task.pk, {"status": "processing", "current_step": "a"})
    assert response.status_code == 200
    task.refresh_from_db()
    assert (task.status, task.current_step, task.version) == ("processing", "a", 2)


def test_a_processing_callback_for_a_finished_task_still_answers_409(client, user):
    task = chat_task(user)
    post_callback(client, task.pk, test_webhook.COMPLETED)
    response = post_callback(client, task.pk, {"status": "processing"})
    assert response.status_code == 409
    assert response.json()["status"] == "completed"
