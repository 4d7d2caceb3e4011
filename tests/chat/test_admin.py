"""The admin of the three tables answers a superuser and nobody else."""

import pytest
from django.urls import reverse

from tests import factories

pytestmark = pytest.mark.django_db

MODELS = ["chat_conversation", "chat_message", "tasks_asynctask"]


@pytest.fixture
def rows(user):
    conversation = factories.conversation(user, title="Quarterly numbers")
    task = factories.task(
        user, n8n_execution_id="exec-77", input_data={"message": "hi"}, error_details={"x": 1}
    )
    message = factories.message(conversation, content="find me", async_task=task)
    return {"chat_conversation": conversation, "chat_message": message, "tasks_asynctask": task}


@pytest.mark.parametrize("model", MODELS)
def test_superuser_sees_changelist_change_form_and_search(admin_client, rows, model):
    changelist = reverse(f"admin:{model}_changelist")
    assert admin_client.get(changelist).status_code == 200
    change = reverse(f"admin:{model}_change", args=[rows[model].pk])
    response = admin_client.get(change)
    assert response.status_code == 200
    for term in ("Quarterly", "find me", "exec-77", "alice"):
        assert admin_client.get(changelist, {"q": term}).status_code == 200


def test_admin_search_finds_by_execution_id_and_content(admin_client, rows):
    response = admin_client.get(reverse("admin:tasks_asynctask_changelist"), {"q": "exec-77"})
    assert b"exec-77" in response.content
    response = admin_client.get(reverse("admin:chat_message_changelist"), {"q": "find me"})
    assert b"find me" in response.content
    response = admin_client.get(reverse("admin:chat_conversation_changelist"), {"q": "alice"})
    assert b"Quarterly numbers" in response.content


def test_conversation_change_form_shows_its_messages_inline(admin_client, rows):
    conversation = rows["chat_conversation"]
    response = admin_client.get(reverse("admin:chat_conversation_change", args=[conversation.pk]))
    assert b"find me" in response.content
    assert reverse("admin:tasks_asynctask_change", args=[rows["tasks_asynctask"].pk]).encode() in (
        response.content
    )


@pytest.mark.parametrize("model", MODELS)
def test_normal_user_is_refused_everywhere(client, user, rows, model):
    client.force_login(user)
    for url in (
        reverse(f"admin:{model}_changelist"),
        reverse(f"admin:{model}_change", args=[rows[model].pk]),
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]
