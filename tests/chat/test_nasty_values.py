"""The nastiest values the webhook accepts break no page: the conversation, the
task's JSON, the sync frames and the admin all still answer."""

import json

import pytest

from chat.consumers import sync_frames
from chat.models import Message, Role
from tests.task_support import chat_task, post_callback

pytestmark = pytest.mark.django_db

ODD = (
    "\u202eevil\u202c \u200b\u200d\ufeff 𝕏𝔜ℤ e\u0301\u0301\u0301 ﷽ "
    "\U0001f469\u200d\U0001f469\u200d\U0001f467 \x7f\x1b[31m"
)


def nest(depth, leaf):
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


NASTY_OUTPUTS = {
    # Just under CHAT_REPLY_MAX_LENGTH (100,000): the longest reply that is kept.
    "long": {"content": "x" * 99_999, "thinking": "y" * 100_000},
    "odd unicode": {"content": ODD * 50, "thinking": ODD},
    "deep lists in output": {"content": "deep", "extra": nest(29, ODD)},
    "deep markdown list": {"content": "".join("  " * i + "- item\n" for i in range(250))},
    "deep markdown quote": {"content": ">" * 250 + " quoted"},
    "html": {"content": "<script>alert(1)</script><img src=x onerror=alert(1)>" * 100},
}


@pytest.mark.parametrize("kind", list(NASTY_OUTPUTS))
def test_pages_render_an_accepted_nasty_reply(user_client, admin_client, user, kind):
    task = chat_task(user)
    post_callback(user_client, task.pk, {"status": "processing", "status_message": ODD * 100})
    response = post_callback(
        user_client, task.pk, {"status": "completed", "output": NASTY_OUTPUTS[kind]}
    )
    assert response.status_code == 200, response.content
    conversation_id = task.input_data["conversation_id"]
    reply = Message.objects.get(async_task=task, role=Role.ASSISTANT)

    assert user_client.get(f"/chat/{conversation_id}/").status_code == 200
    assert user_client.get(f"/tasks/{task.pk}/").status_code == 200
    frames = sync_frames(reply.conversation, 0)
    json.dumps(frames)  # what the socket would send
    for url in (
        f"/admin/chat/conversation/{conversation_id}/change/",
        f"/admin/chat/message/{reply.pk}/change/",
        f"/admin/tasks/asynctask/{task.pk}/change/",
        "/admin/chat/message/",
        "/admin/tasks/asynctask/",
    ):
        assert admin_client.get(url).status_code == 200, url


def test_pages_render_an_accepted_nasty_failure(user_client, admin_client, user):
    task = chat_task(user)
    error = {"message": ODD * 20, "detail": nest(30, "x" * 10_000)}
    response = post_callback(user_client, task.pk, {"status": "failed", "error": error})
    assert response.status_code == 200, response.content
    conversation_id = task.input_data["conversation_id"]
    assert user_client.get(f"/chat/{conversation_id}/").status_code == 200
    assert user_client.get(f"/tasks/{task.pk}/").status_code == 200
    assert admin_client.get(f"/admin/tasks/asynctask/{task.pk}/change/").status_code == 200
    assert (
        admin_client.get(f"/admin/chat/conversation/{conversation_id}/change/").status_code == 200
    )
