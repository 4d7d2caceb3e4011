"""`/accounts/settings/`: a user's default instructions and theme."""

import pytest

from accounts.models import UserSettings

pytestmark = pytest.mark.django_db
URL = "/accounts/settings/"


def test_anonymous_users_are_sent_to_log_in(client):
    answer = client.get(URL)
    assert answer.status_code == 302 and "/accounts/login/" in answer["Location"]


def test_the_page_offers_instructions_and_the_three_themes(user_client):
    page = user_client.get(URL).content.decode()
    assert 'name="instructions"' in page
    for value in ("system", "light", "dark"):
        assert f'value="{value}"' in page
    assert 'data-theme="system"' in page


def test_saving_stores_them_and_the_theme_drives_every_page(user_client, user):
    answer = user_client.post(URL, {"instructions": " Be kind. ", "theme": "dark"})
    assert answer.status_code == 303
    saved = UserSettings.objects.get(user=user)
    assert (saved.instructions, saved.theme) == ("Be kind.", "dark")
    page = user_client.get("/chat/").content.decode()
    assert '<html lang="en" data-theme="dark">' in page
    assert '<meta name="color-scheme" content="dark">' in page
    user_client.post(URL, {"instructions": "", "theme": "light"})
    assert 'data-theme="light"' in user_client.get("/chat/").content.decode()


@pytest.mark.parametrize(
    "data", [{"instructions": "a" * 4001, "theme": "dark"}, {"instructions": "", "theme": "pink"}]
)
def test_bad_input_is_a_400_and_changes_nothing(user_client, user, data):
    user_client.post(URL, {"instructions": "Keep.", "theme": "light"})
    answer = user_client.post(URL, data)
    assert answer.status_code == 400
    saved = UserSettings.objects.get(user=user)
    assert (saved.instructions, saved.theme) == ("Keep.", "light")
    assert 'data-theme="light"' in answer.content.decode()


def test_settings_are_each_users_own(user_client, other_client, user, other_user):
    user_client.post(URL, {"instructions": "Mine.", "theme": "dark"})
    page = other_client.get(URL).content.decode()
    assert "Mine." not in page and 'data-theme="system"' in page
    assert not UserSettings.objects.filter(user=other_user).exists()


def test_the_theme_is_read_at_login(client, user):
    UserSettings.objects.create(user=user, theme="dark")
    client.force_login(user)
    assert 'data-theme="dark"' in client.get("/chat/").content.decode()
