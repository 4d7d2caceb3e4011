"""Creating, renaming, archiving and deleting conversations; titles."""

import pytest

from chat import services
from chat.models import Conversation, Message
from tasks.models import AsyncTask
from tests import factories

pytestmark = pytest.mark.django_db


# --- Title derivation ---------------------------------------------------------


def test_a_short_message_is_the_title():
    assert services.derive_title("Plan a trip to Lisbon") == "Plan a trip to Lisbon"


def test_title_is_cut_at_a_word_near_60_characters():
    text = "Could you help me plan a three day trip to Lisbon with two children in late May?"
    title = services.derive_title(text)
    assert title == "Could you help me plan a three day trip to Lisbon with two…"
    assert len(title) <= 61
    assert text.startswith(title[:-1])


def test_title_collapses_whitespace_and_newlines():
    assert services.derive_title("  Hello\n\n  world\t again ") == "Hello world again"


def test_a_title_without_spaces_is_cut_hard():
    title = services.derive_title("x" * 200)
    assert title == "x" * 60 + "…"


def test_title_of_exactly_60_characters_is_kept_whole():
    text = ("word " * 12).strip()[:60]
    assert services.derive_title(text) == text


def test_first_message_names_an_untitled_conversation(user):
    conversation = factories.conversation(user, title="")
    services.send_message(user, conversation, "What is the capital of Portugal, and why?")
    conversation.refresh_from_db()
    assert conversation.title == "What is the capital of Portugal, and why?"
    AsyncTask.objects.update(status="completed")
    services.send_message(user, conversation, "Another question entirely")
    conversation.refresh_from_db()
    assert conversation.title == "What is the capital of Portugal, and why?"


def test_a_given_title_is_kept(user):
    conversation = factories.conversation(user, title="Mine")
    services.send_message(user, conversation, "Something else")
    conversation.refresh_from_db()
    assert conversation.title == "Mine"


# --- Create ------------------------------------------------------------------


def test_new_conversation_redirects_303_to_it(user_client, user):
    response = user_client.post("/chat/new/", {})
    assert response.status_code == 303
    conversation = Conversation.objects.get()
    assert conversation.user == user
    assert conversation.title == ""
    assert response["Location"] == f"/chat/{conversation.pk}/"


def test_new_conversation_with_title_and_first_message(user_client, user):
    response = user_client.post("/chat/new/", {"title": " Lisbon ", "content": "Plan my trip"})
    assert response.status_code == 303
    conversation = Conversation.objects.get()
    assert conversation.title == "Lisbon"
    message = Message.objects.get()
    assert message.conversation == conversation
    assert message.content == "Plan my trip"
    assert message.async_task.status == "pending"
    assert message.async_task.input_data["conversation_id"] == conversation.pk


def test_new_conversation_takes_its_title_from_the_first_message(user_client):
    user_client.post("/chat/new/", {"content": "How do I bake bread at home without a mixer?"})
    assert Conversation.objects.get().title == "How do I bake bread at home without a mixer?"


def test_new_conversation_with_an_over_long_message_stores_nothing(user_client, settings):
    settings.CHAT_MESSAGE_MAX_LENGTH = 10
    response = user_client.post("/chat/new/", {"content": "x" * 11})
    assert response.status_code == 400
    assert "the limit is 10" in response.content.decode()
    assert not Conversation.objects.exists()
    assert not Message.objects.exists()
    assert not AsyncTask.objects.exists()


def test_new_page_shows_an_empty_composer_and_stores_nothing(user_client):
    response = user_client.get("/chat/new/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<form id="composer" class="composer" method="post" action="/chat/new/">' in html
    assert 'name="content" id="composer-input"' in html
    assert not Conversation.objects.exists()


def test_a_too_long_first_message_from_the_new_page_is_refused_there_with_the_text_kept(
    user_client, settings
):
    settings.CHAT_MESSAGE_MAX_LENGTH = 10
    response = user_client.post("/chat/new/", {"content": "far too long for it"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Your message is 19 characters long; the limit is 10." in html
    assert ">far too long for it</textarea>" in html
    assert '<form id="composer" class="composer" method="post" action="/chat/new/">' in html
    assert not Conversation.objects.exists()


def test_new_page_needs_a_login(client):
    response = client.get("/chat/new/")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_new_refuses_other_methods(user_client):
    assert user_client.put("/chat/new/").status_code == 405
    assert not Conversation.objects.exists()


def test_the_sidebar_opens_the_new_page_with_a_link_not_a_form(user_client):
    html = user_client.get("/chat/").content.decode()
    assert '<a class="button button--primary button--block" href="/chat/new/"' in html
    sidebar = html.split('<aside class="sidebar"')[1].split("</aside>")[0]
    assert 'action="/chat/new/"' not in sidebar


# --- Rename ------------------------------------------------------------------


def test_rename(user_client, user):
    conversation = factories.conversation(user, title="Old")
    response = user_client.post(f"/chat/{conversation.pk}/rename/", {"title": "  New   name "})
    assert response.status_code == 303
    assert response["Location"] == f"/chat/{conversation.pk}/"
    conversation.refresh_from_db()
    assert conversation.title == "New name"


def test_rename_to_blank_is_refused(user_client, user):
    conversation = factories.conversation(user, title="Old")
    response = user_client.post(f"/chat/{conversation.pk}/rename/", {"title": "   "})
    assert response.status_code == 400
    conversation.refresh_from_db()
    assert conversation.title == "Old"


def test_rename_too_long_is_refused(user_client, user):
    conversation = factories.conversation(user, title="Old")
    response = user_client.post(f"/chat/{conversation.pk}/rename/", {"title": "x" * 201})
    assert response.status_code == 400
    conversation.refresh_from_db()
    assert conversation.title == "Old"


# --- Archive / unarchive -----------------------------------------------------


def listed(client, url="/chat/"):
    html = client.get(url).content.decode()
    start = html.index('<ul class="conversation-list">')
    return html[start : html.index("</ul>", start)]


def test_archive_and_unarchive(user_client, user):
    conversation = factories.conversation(user, title="Old stuff")
    response = user_client.post(f"/chat/{conversation.pk}/archive/")
    assert response.status_code == 303
    assert response["Location"] == "/chat/"
    conversation.refresh_from_db()
    assert conversation.is_archived
    assert "Old stuff" not in listed(user_client)
    assert "Old stuff" in listed(user_client, "/chat/?archived=1")

    response = user_client.post(f"/chat/{conversation.pk}/archive/", {"archived": "0"})
    assert response.status_code == 303
    assert response["Location"] == f"/chat/{conversation.pk}/"
    conversation.refresh_from_db()
    assert not conversation.is_archived
    assert "Old stuff" in listed(user_client)
    assert "Old stuff" not in listed(user_client, "/chat/?archived=1")


def test_an_archived_conversation_still_opens_and_says_so(user_client, user):
    conversation = factories.conversation(user, title="Kept", is_archived=True)
    html = user_client.get(f"/chat/{conversation.pk}/").content.decode()
    assert "Archived</span>" in html
    assert 'name="archived" value="0"' in html


# --- Delete ------------------------------------------------------------------


def test_delete_asks_for_confirmation_first(user_client, user):
    conversation = factories.conversation(user, title="Doomed")
    factories.message(conversation, "hi")
    response = user_client.get(f"/chat/{conversation.pk}/delete/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Delete “Doomed”?" in html
    assert "1 message." in html
    assert f'action="/chat/{conversation.pk}/delete/"' in html
    assert Conversation.objects.filter(pk=conversation.pk).exists()


def test_delete_removes_the_conversation_and_its_messages_not_its_tasks(user_client, user):
    conversation = factories.conversation(user, title="Doomed")
    message = services.send_message(user, conversation, "hi")
    response = user_client.post(f"/chat/{conversation.pk}/delete/")
    assert response.status_code == 303
    assert response["Location"] == "/chat/"
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not Message.objects.exists()
    assert AsyncTask.objects.filter(pk=message.async_task_id).exists()
    assert "Deleted “Doomed”." in user_client.get("/chat/").content.decode()


def test_the_conversation_page_links_rename_archive_delete(user_client, user):
    conversation = factories.conversation(user)
    html = user_client.get(f"/chat/{conversation.pk}/").content.decode()
    assert f'action="/chat/{conversation.pk}/rename/"' in html
    assert f'action="/chat/{conversation.pk}/archive/"' in html
    assert f'href="/chat/{conversation.pk}/delete/"' in html
