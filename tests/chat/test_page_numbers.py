"""Page numbers and ids out of any sensible range answer 404 (or the first page
for words), never 500, on SQLite and PostgreSQL alike."""

import pytest

from tests import factories

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("page", ["99999999999999999999", "100001", "2"])
def test_a_page_past_the_last_is_404(user_client, user, page):
    factories.conversation(user)
    assert user_client.get(f"/chat/?page={page}").status_code == 404
    assert user_client.get(f"/chat/?archived=1&page={page}").status_code == 404


@pytest.mark.parametrize("page", ["-1", "0", "abc", "", "1.5", "1" * 5000])
def test_a_page_that_is_not_a_positive_number_shows_the_first(user_client, user, page):
    factories.conversation(user, title="the first page")
    response = user_client.get(f"/chat/?page={page}")
    assert response.status_code == 200
    assert "the first page" in response.content.decode()


@pytest.mark.parametrize("before", ["99999999999999999999", "-1", "abc"])
def test_an_out_of_range_before_id_still_shows_the_conversation(user_client, user, before):
    conversation = factories.conversation(user)
    factories.message(conversation, "still here")
    response = user_client.get(f"/chat/{conversation.pk}/?before={before}")
    assert response.status_code == 200
    assert "still here" in response.content.decode()


@pytest.mark.parametrize(
    "url",
    [
        "/chat/99999999999999999999/",
        "/tasks/99999999999999999999/",
        "/chat/99999999999999999999/delete/",
    ],
)
def test_an_out_of_range_id_is_404(user_client, url):
    assert user_client.get(url).status_code == 404
