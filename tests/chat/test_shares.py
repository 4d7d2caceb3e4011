"""Share links over HTTP: `POST /chat/{id}/share/`, `POST /chat/{id}/share/revoke/`
and the read-only page `/s/{token}/` (docs/USING.md, "Sharing a conversation")."""

import re

import pytest
from django.test import Client

from chat.models import Conversation, Role, Share
from tests import factories

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def conversation(user):
    conversation = factories.conversation(user, title="Trip planning")
    question = factories.message(conversation, "Where should we go?")
    factories.message(conversation, "Try **Lisbon**.", role=Role.ASSISTANT, parent=question)
    return conversation


def share(client, conversation, **data):
    response = client.post(f"/chat/{conversation.pk}/share/", data, **JSON)
    assert response.status_code == 201, response.content
    return response.json()["share"]


def path_of(link):
    return re.sub(r"^https?://[^/]+", "", link["url"])


def test_the_owner_gets_a_link_with_a_long_random_url_safe_token(user_client, conversation):
    link = share(user_client, conversation)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", link["token"])  # 32 bytes: 256 bits
    assert path_of(link) == f"/s/{link['token']}/"
    row = Share.objects.get()
    assert (row.conversation_id, row.token, row.revoked_at) == (
        conversation.pk,
        link["token"],
        None,
    )
    assert row.last_message_id == conversation.messages.order_by("-id").first().pk


def test_a_form_post_shows_the_link_on_the_page(user_client, conversation):
    response = user_client.post(f"/chat/{conversation.pk}/share/", follow=True)
    page = response.content.decode()
    token = Share.objects.get().token
    assert f"/s/{token}/" in page
    assert "Turn shared links off" in page


def test_anyone_reads_the_shared_branch_without_logging_in(user_client, conversation):
    link = share(user_client, conversation)
    response = Client().get(path_of(link))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Where should we go?" in page
    assert "<strong>Lisbon</strong>" in page
    assert "Trip planning" in page


def test_the_shared_page_is_noindex_and_carries_the_security_headers(user_client, conversation):
    response = Client().get(path_of(share(user_client, conversation)))
    assert "noindex" in response["X-Robots-Tag"]
    assert '<meta name="robots" content="noindex' in response.content.decode()
    assert "Content-Security-Policy" in response
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response["Cache-Control"]


def test_the_shared_page_has_no_composer_controls_or_internals(user_client, conversation, user):
    factories.task(user, status="failed")  # a task exists; nothing of it shows
    response = Client().get(path_of(share(user_client, conversation)))
    page = response.content.decode()
    for control in (
        'id="composer"',
        "Regenerate",
        "message__edit",
        "message__feedback",
        "Manage",
        "task-status",
        "Details",
        f"/chat/{conversation.pk}",
        "csrfmiddlewaretoken",
        "n8n",
    ):
        assert control not in page, control


def test_messages_written_after_sharing_never_appear(user_client, conversation):
    link = share(user_client, conversation)
    leaf = conversation.messages.order_by("-id").first()
    factories.message(conversation, "A later question", parent=leaf)
    page = Client().get(path_of(link)).content.decode()
    assert "Where should we go?" in page
    assert "A later question" not in page


def test_the_link_shows_the_branch_the_page_showed(user_client, conversation):
    first_answer = conversation.messages.get(role=Role.ASSISTANT)
    question = first_answer.parent
    other = factories.message(conversation, "Porto instead.", role=Role.ASSISTANT, parent=question)
    page_leaf = share(user_client, conversation, leaf=first_answer.pk)
    default = share(user_client, conversation)
    assert default["last_message_id"] == other.pk
    shown = Client().get(path_of(page_leaf)).content.decode()
    assert "Lisbon" in shown and "Porto instead." not in shown


def test_sharing_the_same_branch_twice_gives_the_same_link(user_client, conversation):
    assert share(user_client, conversation)["token"] == share(user_client, conversation)["token"]
    assert Share.objects.count() == 1


def test_another_users_conversation_is_a_404(other_client, conversation):
    assert other_client.post(f"/chat/{conversation.pk}/share/", **JSON).status_code == 404
    assert other_client.post(f"/chat/{conversation.pk}/share/revoke/", **JSON).status_code == 404
    assert not Share.objects.exists()


def test_anonymous_users_are_sent_to_log_in(client, conversation):
    response = client.post(f"/chat/{conversation.pk}/share/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert not Share.objects.exists()


def test_only_post_makes_a_link(user_client, conversation):
    assert user_client.get(f"/chat/{conversation.pk}/share/").status_code == 405
    assert not Share.objects.exists()


def test_an_empty_conversation_has_nothing_to_share(user_client, user):
    empty = factories.conversation(user)
    response = user_client.post(f"/chat/{empty.pk}/share/", **JSON)
    assert response.status_code == 400
    assert "nothing to share" in response.json()["error"]
    assert not Share.objects.exists()


def test_revoking_turns_every_link_of_the_conversation_off(user_client, conversation):
    first = share(user_client, conversation)
    leaf = conversation.messages.order_by("-id").first()
    factories.message(conversation, "More", parent=leaf)
    second = share(user_client, conversation)
    assert first["token"] != second["token"]
    response = user_client.post(f"/chat/{conversation.pk}/share/revoke/", **JSON)
    assert response.json() == {"revoked": 2}
    for link in (first, second):
        assert Client().get(path_of(link)).status_code == 404
    assert Share.objects.filter(revoked_at__isnull=True).count() == 0


def test_unknown_and_malformed_tokens_are_404(client):
    for token in ("x" * 43, "short", "a" * 65, "bad%20token"):
        assert client.get(f"/s/{token}/").status_code == 404


def test_deleting_the_conversation_deletes_its_links(user_client, conversation):
    link = share(user_client, conversation)
    assert user_client.post(f"/chat/{conversation.pk}/delete/").status_code == 303
    assert not Conversation.objects.exists()
    assert not Share.objects.exists()
    assert Client().get(path_of(link)).status_code == 404


def test_links_per_conversation_are_bounded(user_client, conversation, settings):
    settings.SHARE_MAX_PER_CONVERSATION = 2
    leaf = conversation.messages.order_by("-id").first()
    for n in range(2):
        leaf = factories.message(conversation, f"more {n}", parent=leaf)
        share(user_client, conversation)
    factories.message(conversation, "and more", parent=leaf)
    response = user_client.post(f"/chat/{conversation.pk}/share/", **JSON)
    assert response.status_code == 409
    assert Share.objects.count() == 2
    user_client.post(f"/chat/{conversation.pk}/share/revoke/")
    share(user_client, conversation)  # room again once they are off


def test_links_per_user_are_bounded(user_client, user, settings):
    settings.SHARE_MAX_PER_USER = 1
    conversations = [factories.conversation(user) for _ in range(2)]
    for item in conversations:
        factories.message(item, "hello")
    share(user_client, conversations[0])
    response = user_client.post(f"/chat/{conversations[1].pk}/share/", **JSON)
    assert response.status_code == 409
    assert Share.objects.count() == 1


def test_making_links_is_rate_limited(user_client, conversation, settings):
    settings.SHARE_RATE_LIMIT = "2/h"
    share(user_client, conversation)
    share(user_client, conversation)
    response = user_client.post(f"/chat/{conversation.pk}/share/", **JSON)
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0


def test_a_shared_page_shows_at_most_its_limit_of_messages(user_client, user, settings):
    settings.SHARE_MAX_MESSAGES = 3
    conversation = factories.conversation(user)
    leaf = None
    for n in range(5):
        leaf = factories.message(conversation, f"message number {n}", parent=leaf)
    page = Client().get(path_of(share(user_client, conversation))).content.decode()
    assert "message number 4" in page and "message number 2" in page
    assert "message number 1" not in page
    assert "Earlier messages of this conversation are not shown." in page


def test_a_shared_page_with_html_in_messages_is_escaped(user_client, user):
    conversation = factories.conversation(user, title="<script>alert(1)</script>")
    factories.message(conversation, "<img src=x onerror=alert(1)>")
    page = Client().get(path_of(share(user_client, conversation))).content.decode()
    assert "<script>alert(1)" not in page
    assert "<img src=x" not in page


def test_an_admin_sees_links_and_turns_them_off(admin_client, user_client, conversation):
    link = share(user_client, conversation)
    row = Share.objects.get()
    listing = admin_client.get("/admin/chat/share/")
    assert listing.status_code == 200
    assert f"/admin/chat/share/{row.pk}/change/" in listing.content.decode()
    response = admin_client.post(
        "/admin/chat/share/", {"action": "turn_off", "_selected_action": [row.pk]}
    )
    assert response.status_code == 302
    assert Client().get(path_of(link)).status_code == 404


@pytest.mark.parametrize("leaf", ["abc", "-1", "0", str(2**63)])
def test_a_malformed_leaf_is_a_404_and_makes_no_link(user_client, conversation, leaf):
    response = user_client.post(f"/chat/{conversation.pk}/share/", {"leaf": leaf}, **JSON)
    assert response.status_code == 404
    assert not Share.objects.exists()


def test_a_leaf_of_another_conversation_is_a_404(user_client, conversation, user):
    elsewhere = factories.message(factories.conversation(user), "elsewhere")
    response = user_client.post(f"/chat/{conversation.pk}/share/", {"leaf": elsewhere.pk}, **JSON)
    assert response.status_code == 404
    assert "not part of this conversation" in response.json()["error"]
    assert not Share.objects.exists()
