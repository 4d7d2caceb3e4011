"""A rating reaches the shipped feedback workflow (n8n/feedback.json) in a real
n8n as a `feedback` task, which the workflow records and completes through
the callback. Skips on a laptop without n8n; fails under CI=true."""

import pytest

from chat.models import Message, Role
from chat.replies import feedback
from tests import factories
from tests.e2e.n8n_support import SECRET, project_server
from tests.task_support import wait_for_status

pytestmark = [pytest.mark.n8n, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def app_server(n8n, django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        server = project_server(n8n, N8N_FEEDBACK_WORKFLOW="chat-feedback")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def to_n8n(settings, n8n, app_server):
    settings.N8N_BASE_URL = n8n.base_url
    settings.N8N_WEBHOOK_SECRET = SECRET
    settings.PUBLIC_BASE_URL = app_server.base_url
    settings.N8N_FEEDBACK_WORKFLOW = "chat-feedback"
    settings.TASK_DISPATCH_MAX_ATTEMPTS = 3
    settings.TASK_DISPATCH_BACKOFF_SECONDS = 0.05
    return settings


def test_a_rating_becomes_a_completed_feedback_task_in_n8n(to_n8n, user):
    conversation = factories.conversation(user)
    question = factories.message(conversation, "Capital of France?")
    reply = factories.message(conversation, "Paris.", role=Role.ASSISTANT, parent=question)
    # The rating's commit hands the task to the dispatch pool, as in production.
    _, task = feedback.rate(user, reply, "down", "Too short")
    done = wait_for_status(task.pk, {"completed", "failed"}, timeout=60)
    assert done.status == "completed", done.error_details
    assert done.attempts == 1
    assert done.output_data["stored"] is True
    assert done.output_data["rating"] == "down"
    assert done.output_data["count"] >= 1
    assert done.n8n_execution_id
    # The rating stays on the reply; the workflow's answer adds no message.
    assert Message.objects.get(pk=reply.pk).metadata["feedback"]["comment"] == "Too short"
    assert Message.objects.filter(conversation=conversation).count() == 2
