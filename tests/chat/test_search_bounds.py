"""GET /chat/search/ stays bounded (finding N11): control characters never
reach the database, a query needs a word to look for, searches per user are
rate limited, and on PostgreSQL a statement timeout ends a search that would
run long, with plain words."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.search import query as finder
from chat.search import sql
from tests import factories
from tests.html_tree import parse

pytestmark = pytest.mark.django_db


def search(client, q, **headers):
    return client.get("/chat/search/", {"q": q}, **headers)


@pytest.fixture
def rows(user, other_user):
    mine = factories.conversation(user, title="Mine")
    factories.message(mine, "the pelican flies over the river")
    theirs = factories.conversation(other_user, title="Theirs")
    factories.message(theirs, "otterword only here")
    return mine


# --- Control characters ------------------------------------------------------------------


@pytest.mark.parametrize(
    "q", ["\x00", "pelican\x00", "\x00pelican\x1b[2J", "\x7f\x01\x02", "a\x0bb"]
)
def test_control_characters_never_fail(user_client, rows, q):
    response = search(user_client, q)
    assert response.status_code in (200, 400)
    assert "\x00" not in response.content.decode()


def test_control_characters_are_read_as_spaces(user_client, rows):
    response = search(user_client, "pel\x00ican pelican\x00")
    assert response.status_code == 200
    assert "Mine" in response.content.decode()
    assert finder.clean_query("a\x00b\x1fc\x7fd\u2028e") == "a b c d e"


# --- A word to look for ------------------------------------------------------------------


@pytest.mark.parametrize(
    "q", ["-pelican", "-pelican -river", '-"the pelican"', "-pelican or -river"]
)
def test_a_query_of_only_excluded_words_is_refused_without_a_query(user_client, rows, q):
    with CaptureQueriesContext(connection) as queries:
        response = search(user_client, q)
    assert response.status_code == 400
    assert "word to look for" in parse(response.content.decode()).text()
    assert not any("chat_messages" in query["sql"] and "@@" in query["sql"] for query in queries)
    assert not any("MATCH" in query["sql"] for query in queries)


def test_excluded_words_with_a_word_to_look_for_still_work(user_client, rows):
    response = search(user_client, "pelican -otterword")
    assert response.status_code == 200
    assert "Mine" in response.content.decode()


def test_on_postgresql_a_query_only_stopwords_make_positive_is_refused_too(
    postgres_only, user_client, rows
):
    # "the" is a stop word: websearch_to_tsquery leaves only `!'pelican'`.
    response = search(user_client, "the -pelican")
    assert response.status_code == 400
    assert "word to look for" in response.content.decode()


# --- Rate limit --------------------------------------------------------------------------


def test_searches_past_the_rate_get_429(user_client, other_client, rows, settings):
    settings.SEARCH_RATE_LIMIT = "3/m"
    for _ in range(3):
        assert search(user_client, "pelican").status_code == 200
    response = search(user_client, "pelican", HTTP_ACCEPT="application/json")
    assert response.status_code == 429
    assert set(response.json()) == {"error", "retry_after"}
    assert response["Retry-After"] == str(response.json()["retry_after"])
    page = search(user_client, "pelican")
    assert page.status_code == 429
    assert "Too many requests" in page.content.decode()
    # Per user: another user still searches.
    assert search(other_client, "otterword").status_code == 200


def test_the_search_form_itself_is_not_counted(user_client, settings):
    settings.SEARCH_RATE_LIMIT = "1/m"
    for _ in range(3):
        assert user_client.get("/chat/search/").status_code == 200
    assert search(user_client, "pelican").status_code == 200


def test_the_search_limit_defaults_to_30_a_minute():
    from chatproject import settings as project_settings

    assert project_settings.SEARCH_RATE_LIMIT == "30/m"


# --- Time limit --------------------------------------------------------------------------


def test_a_search_that_runs_too_long_gets_plain_words(user_client, rows, monkeypatch):
    def too_slow(*args, **kwargs):
        raise sql.TooSlow

    monkeypatch.setattr(sql, "messages", too_slow)
    response = search(user_client, "pelican")
    assert response.status_code == 400
    text = parse(response.content.decode()).text()
    assert "took too long" in text
    assert "statement" not in text.lower() and "cancel" not in text.lower()


def test_on_postgresql_the_time_limit_cancels_a_long_statement(postgres_only, settings):
    settings.SEARCH_TIMEOUT_SECONDS = 0.05
    with pytest.raises(sql.TooSlow):
        with sql.time_limit(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(1)")
    # The connection is usable afterwards, and the limit did not outlive the block.
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('statement_timeout')")
        assert cursor.fetchone()[0] != "50ms"


def test_on_postgresql_the_search_runs_under_the_time_limit(
    postgres_only, user_client, rows, settings
):
    settings.SEARCH_TIMEOUT_SECONDS = 1.5
    with CaptureQueriesContext(connection) as queries:
        assert search(user_client, "pelican").status_code == 200
    statements = [q["sql"] for q in queries]
    limit = next(i for i, s in enumerate(statements) if "set_config('statement_timeout'" in s)
    search_at = next(i for i, s in enumerate(statements) if "FROM chat_messages m" in s)
    assert limit < search_at
    assert "'1500ms'" in statements[limit] or "1500" in statements[limit]


def test_on_postgresql_the_hits_start_from_the_users_own_conversations(
    postgres_only, user, other_user
):
    """The message hits are read from the user's conversations' rows, so the
    planner can intersect them with the full-text index (BitmapAnd) rather
    than read every other user's matches."""
    mine = factories.conversation(user)
    factories.message(mine, "pelican")
    with CaptureQueriesContext(connection) as queries:
        finder.search(user, "pelican")
    statement = next(q["sql"] for q in queries if "FROM chat_messages m" in q["sql"])
    assert "m.conversation_id = ANY(ARRAY(SELECT" in statement


def test_a_query_with_no_word_at_all_finds_nothing_without_a_query(user_client, rows):
    with CaptureQueriesContext(connection) as queries:
        response = search(user_client, "- ( *")
    assert response.status_code == 200
    assert not any("websearch_to_tsquery" in q["sql"] or "MATCH" in q["sql"] for q in queries)
