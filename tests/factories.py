"""Small builders for rows, shared by the tests."""

from chat.models import Conversation, Message, Role
from tasks.models import AsyncTask


def conversation(user, title="A conversation", **extra):
    return Conversation.objects.create(user=user, title=title, **extra)


def message(conversation, content="hello", role=Role.USER, **extra):
    return Message.objects.create(conversation=conversation, role=role, content=content, **extra)


def task(user, task_type="chat", **extra):
    extra.setdefault("workflow_id", "chat-reply")
    extra.setdefault("input_data", {})
    return AsyncTask.objects.create(task_type=task_type, created_by=user, **extra)
