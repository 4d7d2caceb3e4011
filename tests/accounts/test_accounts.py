"""Sign up, log in, log out: each a proper page, Django's forms and validators."""

import pytest
from django.contrib.auth import get_user_model

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-Passphrase-42"


def test_signup_page_has_the_contract_fields(client):
    response = client.get("/accounts/signup/")
    assert response.status_code == 200
    html = response.content.decode()
    for name in ("username", "password1", "password2"):
        assert f'name="{name}"' in html
        assert f'for="id_{name}"' in html  # every control has a label


def test_signup_creates_the_user_logs_in_and_lands_on_chat(client):
    response = client.post(
        "/accounts/signup/", {"username": "newbie", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code in (302, 303)
    assert response["Location"] == "/chat/"
    assert get_user_model().objects.filter(username="newbie").exists()
    assert client.get("/chat/").status_code == 200  # logged in


def test_signup_refuses_a_weak_password_and_stores_nothing(client):
    response = client.post(
        "/accounts/signup/", {"username": "newbie", "password1": "123", "password2": "123"}
    )
    assert response.status_code == 400
    assert "too short" in response.content.decode()
    assert not get_user_model().objects.filter(username="newbie").exists()


def test_signup_refuses_mismatched_passwords(client):
    response = client.post(
        "/accounts/signup/",
        {"username": "newbie", "password1": PASSWORD, "password2": PASSWORD + "x"},
    )
    assert response.status_code == 400
    assert not get_user_model().objects.filter(username="newbie").exists()


def test_signup_refuses_a_taken_username(client, user):
    response = client.post(
        "/accounts/signup/",
        {"username": user.username, "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 400
    assert get_user_model().objects.filter(username=user.username).count() == 1


def test_login_page_renders(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="username"' in html and 'name="password"' in html
    assert 'for="id_username"' in html and 'for="id_password"' in html


def test_anonymous_visitor_goes_to_login_and_comes_back(client, user):
    from tests import factories

    conversation = factories.conversation(user)
    url = f"/chat/{conversation.pk}/"
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={url}"
    response = client.post(
        "/accounts/login/", {"username": user.username, "password": PASSWORD, "next": url}
    )
    assert response.status_code == 302
    assert response["Location"] == url
    assert client.get(url).status_code == 200


def test_login_with_a_wrong_password_is_refused(client, user):
    response = client.post("/accounts/login/", {"username": user.username, "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert client.get("/chat/").status_code == 302


def test_login_lands_on_chat_by_default(client, user):
    response = client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    assert response["Location"] == "/chat/"


def test_logout_is_a_post_and_ends_the_session(user_client):
    assert user_client.get("/accounts/logout/").status_code == 405
    assert user_client.get("/chat/").status_code == 200
    response = user_client.post("/accounts/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert user_client.get("/chat/").status_code == 302


def test_pages_offer_logout_as_a_form(user_client):
    html = user_client.get("/chat/").content.decode()
    assert 'action="/accounts/logout/"' in html
    assert 'method="post"' in html


def test_root_redirects_to_chat(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/chat/"
