"""Password reset by mail: Django's views at their usual names, the mail
through EMAIL_URL (Django's in-memory outbox in tests), an answer that never
says whether the address exists, and a limit per client address."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-brand-new-Passphrase-77"


@pytest.fixture
def alice(make_user):
    return make_user("alice", email="alice@example.test")


def ask_reset(client, email):
    return client.post("/accounts/password_reset/", {"email": email})


def link_in(message):
    return re.search(r"https?://[^/\s]+(/accounts/reset/\S+/)", message.body).group(1)


def test_the_login_page_links_to_the_reset(client):
    assert 'href="/accounts/password_reset/"' in client.get("/accounts/login/").content.decode()


def test_a_reset_mails_link_sets_a_new_password_that_logs_in(client, alice):
    response = ask_reset(client, "alice@example.test")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/password_reset/done/"
    [message] = mail.outbox
    assert message.to == ["alice@example.test"]
    assert "alice" in message.body
    page = client.get(link_in(message), follow=True)
    assert page.status_code == 200
    set_url = page.redirect_chain[-1][0]
    assert "set-password" in set_url
    done = client.post(set_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert done.status_code == 302 and done["Location"] == "/accounts/reset/done/"
    fresh = Client()
    login = fresh.post("/accounts/login/", {"username": "alice", "password": NEW_PASSWORD})
    assert login.status_code == 302 and login["Location"] == "/chat/"
    old = Client().post(
        "/accounts/login/", {"username": "alice", "password": "a-long-Passphrase-42"}
    )
    assert old.status_code == 200  # the old password no longer works


def test_a_reset_link_works_once(client, alice):
    ask_reset(client, "alice@example.test")
    link = link_in(mail.outbox[0])
    set_url = client.get(link, follow=True).redirect_chain[-1][0]
    client.post(set_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    again = Client().get(link, follow=True)
    assert "This link does not work" in again.content.decode()


def test_the_answer_never_says_whether_the_address_exists(client, alice):
    known = ask_reset(client, "alice@example.test")
    unknown = ask_reset(Client(), "nobody@example.test")
    assert (known.status_code, known["Location"]) == (unknown.status_code, unknown["Location"])
    assert len(mail.outbox) == 1
    done = client.get(known["Location"]).content.decode()
    assert "If an account has that address" in done


def test_a_weak_new_password_is_refused(client, alice):
    ask_reset(client, "alice@example.test")
    set_url = client.get(link_in(mail.outbox[0]), follow=True).redirect_chain[-1][0]
    response = client.post(set_url, {"new_password1": "123", "new_password2": "123"})
    assert response.status_code == 200
    assert get_user_model().objects.get().check_password("a-long-Passphrase-42")


def test_reset_requests_are_limited_per_address(alice, settings):
    settings.PASSWORD_RESET_RATE_LIMIT = "2/h"
    client = Client(REMOTE_ADDR="10.7.7.7")
    for _ in range(2):
        assert ask_reset(client, "alice@example.test").status_code == 302
    refused = ask_reset(client, "alice@example.test")
    assert refused.status_code == 429
    assert len(mail.outbox) == 2
    assert ask_reset(Client(REMOTE_ADDR="10.7.7.8"), "alice@example.test").status_code == 302


def test_signup_takes_an_optional_email_for_resets(client):
    data = {"username": "bob", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    assert client.post("/accounts/signup/", data).status_code == 303
    assert get_user_model().objects.get(username="bob").email == ""
    other = dict(data, username="carol", email="carol@example.test")
    assert Client().post("/accounts/signup/", other).status_code == 303
    assert get_user_model().objects.get(username="carol").email == "carol@example.test"


def test_email_url_configures_the_mail_backend():
    import environ

    config = environ.Env.email_url_config("smtp+tls://user:pw@mail.example.test:587")
    assert config["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert config["EMAIL_USE_TLS"] is True
    assert environ.Env.email_url_config("consolemail://")["EMAIL_BACKEND"].endswith(
        "console.EmailBackend"
    )
