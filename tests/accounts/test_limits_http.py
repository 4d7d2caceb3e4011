"""Login, sign-up, send and conversation limits (one process; the Redis-shared
version across two servers is in tests/e2e/test_limits_multiprocess.py)."""

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.test import Client

from chat.models import Conversation, Message
from tasks import services as task_services
from tasks.models import AsyncTask
from tests import factories

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-Passphrase-42"


@pytest.fixture(autouse=True)
def _no_dispatch(monkeypatch):
    monkeypatch.setattr(task_services, "schedule_dispatch", lambda task_id: None)


def login(client, username="alice", password=PASSWORD, url="/accounts/login/", **extra):
    return client.post(url, {"username": username, "password": password}, **extra)


# --- Logins -----------------------------------------------------------------------------


def test_the_right_password_is_refused_with_429_after_five_failures(client, user):
    for _ in range(4):
        assert login(client, password="wrong").status_code == 200  # the form, with an error
    assert login(client, password="wrong").status_code == 429  # the fifth reaches the limit
    response = login(client)
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert int(response["Retry-After"]) == 15 * 60
    assert "_auth_user_id" not in client.session


def test_the_lockout_ends_when_the_window_passes(client, user, settings):
    for _ in range(5):
        login(client, password="wrong")
    assert login(client).status_code == 429
    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.first().attempt_time.replace(year=2000)
    )
    assert login(client).status_code == 302


def test_a_success_resets_that_usernames_count(client, user):
    for _ in range(4):
        login(client, password="wrong")
    assert login(client).status_code == 302
    client.logout()
    for _ in range(4):
        assert login(client, password="wrong").status_code == 200
    assert login(client).status_code == 302


def test_failures_lock_that_account_from_that_address_only(make_user):
    # Finding N4: five wrong passwords from anywhere locked the account everywhere.
    make_user("victim")
    attacker = Client(REMOTE_ADDR="10.9.9.9")
    for _ in range(5):
        login(attacker, username="victim", password="wrong")
    assert login(attacker, username="victim").status_code == 429
    assert login(Client(REMOTE_ADDR="10.1.1.1"), username="victim").status_code == 302


def test_the_owners_success_elsewhere_does_not_unlock_the_stranger(make_user):
    make_user("victim")
    stranger = Client(REMOTE_ADDR="10.9.9.9")
    for _ in range(5):
        login(stranger, username="victim", password="wrong")
    assert login(Client(REMOTE_ADDR="10.1.1.1"), username="victim").status_code == 302
    assert login(stranger, username="victim").status_code == 429


def test_failures_spread_over_addresses_lock_no_one(user):
    for n in range(5):
        login(Client(REMOTE_ADDR=f"10.0.0.{n}"), password="wrong")
    for n in range(5):
        assert login(Client(REMOTE_ADDR=f"10.0.0.{n}")).status_code == 302


def test_other_accounts_behind_the_same_address_are_not_locked(make_user):
    make_user("victim")
    make_user("colleague")
    office = Client(REMOTE_ADDR="10.9.9.9")
    for _ in range(5):
        login(office, username="victim", password="wrong")
    for n in range(5):
        login(office, username=f"guess{n}", password="wrong")
    assert login(office, username="victim").status_code == 429
    assert login(Client(REMOTE_ADDR="10.9.9.9"), username="colleague").status_code == 302


def test_nobody_can_lock_the_admin_out_from_elsewhere(make_user):
    make_user("root", is_staff=True, is_superuser=True)
    for url in ("/accounts/login/", "/admin/login/"):
        for _ in range(5):
            login(Client(REMOTE_ADDR="203.0.113.9"), "root", "wrong", url=url)
    assert login(Client(REMOTE_ADDR="203.0.113.9"), "root", url="/admin/login/").status_code == 429
    response = login(Client(REMOTE_ADDR="127.0.0.1"), "root", url="/admin/login/")
    assert response.status_code == 302


def test_the_admin_login_is_limited_too(client, make_user):
    make_user("root", is_staff=True, is_superuser=True)
    for _ in range(5):
        login(client, "root", "wrong", url="/admin/login/")
    response = login(client, "root", url="/admin/login/")
    assert response.status_code == 429


def test_x_forwarded_for_is_not_trusted_by_default(make_user):
    make_user("victim")
    for n in range(5):
        login(
            Client(REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}"),
            "victim",
            "wrong",
        )
    spoofed = Client(REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR="192.0.2.200")
    assert login(spoofed, "victim").status_code == 429


def test_the_operator_names_the_client_address_header(make_user, settings):
    settings.CLIENT_IP_HEADER = "X-Real-IP"
    make_user("victim")
    for _ in range(5):
        login(Client(REMOTE_ADDR="127.0.0.1", HTTP_X_REAL_IP="192.0.2.7"), "victim", "wrong")
    # Same proxy address, another client behind it: not locked out.
    other = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_REAL_IP="192.0.2.8")
    assert login(other, "victim").status_code == 302
    same = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_REAL_IP="192.0.2.7")
    assert login(same, "victim").status_code == 429


def test_the_failure_limit_is_a_setting(client, user, settings):
    settings.AXES_FAILURE_LIMIT = 2
    login(client, password="wrong")
    login(client, password="wrong")
    assert login(client).status_code == 429


# --- Sign-ups ---------------------------------------------------------------------------


def signup(client, username):
    return client.post(
        "/accounts/signup/",
        {"username": username, "password1": PASSWORD, "password2": PASSWORD},
    )


def test_signups_per_address_are_limited(settings):
    settings.SIGNUP_RATE_LIMIT = "3/h"
    for n in range(3):
        assert signup(Client(REMOTE_ADDR="10.2.2.2"), f"user{n}").status_code == 303
    response = signup(Client(REMOTE_ADDR="10.2.2.2"), "one-too-many")
    assert response.status_code == 429
    assert "Retry-After" in response
    assert not get_user_model().objects.filter(username="one-too-many").exists()
    assert signup(Client(REMOTE_ADDR="10.3.3.3"), "elsewhere").status_code == 303


def test_the_signup_page_itself_is_not_counted(client, settings):
    settings.SIGNUP_RATE_LIMIT = "1/h"
    for _ in range(3):
        assert client.get("/accounts/signup/").status_code == 200
    assert signup(client, "first").status_code == 303


# --- Sends and conversations ----------------------------------------------------------------


def send(client, conversation, content="hi", json=True):
    headers = {"HTTP_ACCEPT": "application/json"} if json else {}
    return client.post(f"/chat/{conversation.pk}/messages/", {"content": content}, **headers)


def finish_tasks():
    AsyncTask.objects.update(status="completed")


def test_sends_past_the_rate_get_429_json_with_retry_after_and_store_nothing(
    user_client, user, settings
):
    settings.CHAT_RATE_LIMIT = "3/m"
    conversation = factories.conversation(user)
    for _ in range(3):
        assert send(user_client, conversation).status_code == 201
        finish_tasks()
    messages_before, tasks_before = Message.objects.count(), AsyncTask.objects.count()
    response = send(user_client, conversation)
    assert response.status_code == 429
    body = response.json()
    assert set(body) == {"error", "retry_after"}
    assert 1 <= body["retry_after"] <= 60
    assert response["Retry-After"] == str(body["retry_after"])
    assert (Message.objects.count(), AsyncTask.objects.count()) == (messages_before, tasks_before)


def test_a_send_past_the_rate_without_json_gets_a_page_with_the_same_words(
    user_client, user, settings
):
    settings.CHAT_RATE_LIMIT = "1/m"
    conversation = factories.conversation(user)
    send(user_client, conversation)
    finish_tasks()
    words = send(user_client, conversation).json()["error"]
    response = send(user_client, conversation, json=False)
    assert response.status_code == 429
    assert "Retry-After" in response
    assert words.split(":")[0] in response.content.decode()
    assert response["Content-Type"].startswith("text/html")


def test_the_send_limit_is_per_user(user_client, other_client, user, other_user, settings):
    settings.CHAT_RATE_LIMIT = "1/m"
    mine, theirs = factories.conversation(user), factories.conversation(other_user)
    assert send(user_client, mine).status_code == 201
    assert send(other_client, theirs).status_code == 201


def test_retries_share_the_send_budget(user_client, user, settings):
    settings.CHAT_RATE_LIMIT = "1/m"
    conversation = factories.conversation(user)
    send(user_client, conversation)
    message = Message.objects.get()
    AsyncTask.objects.update(status="failed")
    response = user_client.post(
        f"/chat/{conversation.pk}/messages/{message.pk}/retry/", HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 429
    assert AsyncTask.objects.count() == 1


def test_conversations_created_per_user_are_limited(user_client, settings):
    settings.CONVERSATION_RATE_LIMIT = "2/h"
    for n in range(2):
        assert user_client.post("/chat/new/", {"title": f"c{n}"}).status_code == 303
    response = user_client.post("/chat/new/", {"title": "one too many"})
    assert response.status_code == 429
    assert "Retry-After" in response
    assert Conversation.objects.count() == 2


def test_a_new_conversation_with_a_first_message_counts_as_a_send(user_client, user, settings):
    settings.CHAT_RATE_LIMIT = "1/m"
    user_client.post("/chat/new/", {"content": "first"})
    finish_tasks()
    response = user_client.post("/chat/new/", {"content": "second"})
    assert response.status_code == 429
    assert Conversation.objects.count() == 1


def test_an_empty_rate_turns_a_limit_off(user_client, user, settings):
    settings.CONVERSATION_RATE_LIMIT = ""
    for n in range(5):
        assert user_client.post("/chat/new/", {"title": f"c{n}"}).status_code == 303
