"""A `feedback` task's status reaches its owner's `/ws/tasks/` socket (and no
conversation's), through the real ASGI stack; and the admin lists it."""

import pytest
from channels.db import database_sync_to_async

from chat.models import Role
from chat.replies import feedback
from tasks import door
from tasks.models import EventSource, TaskStatus
from tests import factories
from tests.ws_support import frames, open_socket

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fresh_layer", "no_dispatch"),
]


def a_reply(user):
    conversation = factories.conversation(user)
    question = factories.message(conversation, "hi")
    return factories.message(conversation, "hello", role=Role.ASSISTANT, parent=question)


def rate(user, reply):
    _message, task = feedback.rate(user, reply, "up", "good")
    return task.pk


def complete(task_id):
    door.change(
        task_id,
        source=EventSource.CALLBACK,
        status=TaskStatus.COMPLETED,
        output_data={"stored": True},
    )


async def test_a_feedback_tasks_status_reaches_the_owners_tasks_socket(
    user, alice_cookie, settings
):
    settings.N8N_FEEDBACK_WORKFLOW = "chat-feedback"
    reply = await database_sync_to_async(a_reply)(user)
    task_socket = await open_socket("/ws/tasks/", alice_cookie)
    chat_socket = await open_socket(f"/ws/chat/{reply.conversation_id}/", alice_cookie)
    task_id = await database_sync_to_async(rate)(user, reply)
    (pending,) = await frames(task_socket, 1)
    assert pending["type"] == "task.status"
    assert (pending["task"]["id"], pending["task"]["task_type"]) == (task_id, "feedback")
    assert pending["task"]["status"] == "pending"
    await database_sync_to_async(complete)(task_id)
    (completed,) = await frames(task_socket, 1)
    assert completed["task"]["status"] == "completed"
    assert completed["task"]["version"] > pending["task"]["version"]
    # A rating is nothing the conversation's page waits for.
    assert await chat_socket.receive_nothing(timeout=0.2)
    await task_socket.disconnect()
    await chat_socket.disconnect()


def test_the_admin_lists_feedback_tasks(admin_client, user, settings):
    settings.N8N_FEEDBACK_WORKFLOW = "chat-feedback"
    task_id = rate(user, a_reply(user))
    listing = admin_client.get("/admin/tasks/asynctask/?task_type__exact=feedback")
    assert listing.status_code == 200
    assert f"/admin/tasks/asynctask/{task_id}/change/" in listing.content.decode()
    page = admin_client.get(f"/admin/tasks/asynctask/{task_id}/change/")
    assert page.status_code == 200 and "chat-feedback" in page.content.decode()
