"""The Supabase RLS promise, kept in Django: nobody sees or touches another's rows.

Every chat URL and method, and /tasks/{id}/, for three actors: the owner
(200/303), another logged-in user (404, nothing changed) and an anonymous
visitor (sent to the login page, nothing changed). Then CSRF on every POST.
"""

import pytest
from django.test import Client

from chat import services
from chat.models import Conversation, Message
from tasks.models import AsyncTask, TaskStatus
from tests import factories

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}

# (method, url template, data, extra headers, the owner's answer)
CASES = [
    ("get", "/chat/{c}/", {}, {}, 200),
    ("get", "/chat/{c}/?before={m}", {}, {}, 200),
    ("post", "/chat/{c}/messages/", {"content": "intruding"}, {}, 303),
    ("post", "/chat/{c}/messages/", {"content": "intruding"}, JSON, 201),
    ("post", "/chat/{c}/messages/{m}/retry/", {}, {}, 303),
    ("post", "/chat/{c}/messages/{m}/retry/", {}, JSON, 201),
    ("post", "/chat/{c}/rename/", {"title": "Renamed"}, {}, 303),
    ("post", "/chat/{c}/archive/", {"archived": "1"}, {}, 303),
    ("post", "/chat/{c}/archive/", {"archived": "0"}, {}, 303),
    ("get", "/chat/{c}/delete/", {}, {}, 200),
    ("post", "/chat/{c}/delete/", {}, {}, 303),
    ("get", "/tasks/{t}/", {}, {}, 200),
]
IDS = [
    f"{method.upper()} {url}{' json' if headers else ''}" for method, url, _, headers, _ in CASES
]


@pytest.fixture
def owned(user):
    """The owner's conversation: a user message whose reply failed (so retry applies)."""
    conversation = factories.conversation(user, title="Private plans")
    factories.message(conversation, "earlier")
    message = services.send_message(user, conversation, "my secret question")
    AsyncTask.objects.filter(pk=message.async_task_id).update(status=TaskStatus.FAILED)
    return conversation, message, message.async_task_id


def snapshot():
    """Everything a request could change, in one comparable value."""
    return (
        list(
            Conversation.objects.order_by("pk").values_list(
                "pk", "title", "is_archived", "updated_at"
            )
        ),  # noqa: E501
        list(Message.objects.order_by("pk").values_list("pk", "content", "async_task_id")),
        list(AsyncTask.objects.order_by("pk").values_list("pk", "status", "version")),
    )


def request(client, case, owned):
    method, template, data, headers, _ = case
    conversation, message, task_id = owned
    url = template.format(c=conversation.pk, m=message.pk, t=task_id)
    return url, getattr(client, method)(url, data, **headers)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_owner_is_served(user_client, owned, case):
    _, response = request(user_client, case, owned)
    assert response.status_code == case[-1]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_other_user_gets_404_and_nothing_changes(other_client, owned, case):
    before = snapshot()
    _, response = request(other_client, case, owned)
    assert response.status_code == 404
    assert "Private plans" not in response.content.decode()
    assert snapshot() == before


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_anonymous_is_sent_to_login_and_nothing_changes(client, owned, case):
    before = snapshot()
    url, response = request(client, case, owned)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    assert snapshot() == before


@pytest.mark.parametrize(
    ("method", "url"), [("get", "/chat/"), ("get", "/chat/?archived=1"), ("post", "/chat/new/")]
)
def test_anonymous_list_and_new_go_to_login(client, method, url):
    response = getattr(client, method)(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/chat/")
    assert not Conversation.objects.exists()


def test_other_user_does_not_see_the_conversation_in_their_lists(other_client, owned):
    for url in ("/chat/", "/chat/?archived=1"):
        html = other_client.get(url).content.decode()
        assert "Private plans" not in html
        assert "my secret question" not in html


def test_other_user_cannot_retry_someone_elses_message_through_their_own_conversation(
    other_client, other_user, owned
):
    _, message, task_id = owned
    theirs = factories.conversation(other_user)
    before = snapshot()
    response = other_client.post(f"/chat/{theirs.pk}/messages/{message.pk}/retry/")
    assert response.status_code == 404
    assert snapshot() == before


def test_a_missing_conversation_is_a_404(user_client):
    assert user_client.get("/chat/999999/").status_code == 404
    assert user_client.post("/chat/999999/messages/", {"content": "x"}).status_code == 404


# --- CSRF on every POST --------------------------------------------------------

POSTS = [
    ("/chat/new/", {"content": "hello"}),
    ("/chat/{c}/messages/", {"content": "hello"}),
    ("/chat/{c}/messages/{m}/retry/", {}),
    ("/chat/{c}/rename/", {"title": "Renamed"}),
    ("/chat/{c}/archive/", {}),
    ("/chat/{c}/delete/", {}),
    ("/accounts/logout/", {}),
]


@pytest.fixture
def csrf_client(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


@pytest.mark.parametrize(("template", "data"), POSTS, ids=[p[0] for p in POSTS])
def test_post_without_a_csrf_token_is_refused_and_changes_nothing(
    csrf_client, owned, template, data
):
    conversation, message, _ = owned
    url = template.format(c=conversation.pk, m=message.pk)
    before = snapshot()
    response = csrf_client.post(url, data)
    assert response.status_code == 403
    assert snapshot() == before
    assert csrf_client.get("/chat/").status_code == 200  # still logged in


@pytest.mark.parametrize(("template", "data"), POSTS, ids=[p[0] for p in POSTS])
def test_post_with_the_pages_csrf_token_is_accepted(csrf_client, owned, template, data):
    conversation, message, _ = owned
    csrf_client.get(f"/chat/{conversation.pk}/")  # sets the csrftoken cookie
    token = csrf_client.cookies["csrftoken"].value
    url = template.format(c=conversation.pk, m=message.pk)
    response = csrf_client.post(url, {**data, "csrfmiddlewaretoken": token})
    assert response.status_code in (302, 303)


@pytest.mark.parametrize(
    ("url", "data"),
    [
        ("/accounts/login/", {"username": "alice", "password": "a-long-Passphrase-42"}),
        (
            "/accounts/signup/",
            {"username": "x1", "password1": "p-Long-42x", "password2": "p-Long-42x"},
        ),  # noqa: E501
    ],
)
def test_account_forms_enforce_csrf(user, url, data):
    from django.contrib.auth import get_user_model

    client = Client(enforce_csrf_checks=True)
    response = client.post(url, data)
    assert response.status_code == 403
    assert not get_user_model().objects.filter(username="x1").exists()
    assert client.get("/chat/").status_code == 302  # not logged in
