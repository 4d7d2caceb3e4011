import os

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from tests import support


@pytest.fixture(autouse=True)
def _test_settings(settings):
    # Production defaults turn test-client requests into HTTPS redirects.
    settings.SECURE_SSL_REDIRECT = False
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # No renderer thread behind in-process tests (tests/chat/test_stream_render.py
    # drives its own); servers started by tests keep the default.
    settings.CHAT_STREAM_RENDER_SECONDS = 0


@pytest.fixture(autouse=True)
def _pool_idle_after_test():
    """A send outside a request hands its dispatch to the pool at once: let
    every job a test started finish before its data is flushed (a job still
    writing its task deadlocks PostgreSQL's TRUNCATE)."""
    yield
    from tasks import pool

    assert pool.wait_until_idle(30), "a dispatch pool job outlived its test by 30 s"


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Rate-limit counters live in the cache, which outlives a test: start each
    test from zero (on Redis, only this project's keys: the channel layer shares
    the database)."""
    support.clear_rate_limits()
    yield


@pytest.fixture
def dispatch_settings(settings):
    """Dispatch to a stand-in n8n: fast retries, short time-outs, a secret."""
    settings.PUBLIC_BASE_URL = "http://app.example.test"
    settings.N8N_WEBHOOK_SECRET = "s3cret"
    settings.TASK_DISPATCH_MAX_ATTEMPTS = 3
    settings.TASK_DISPATCH_BACKOFF_SECONDS = 0.01
    settings.TASK_DISPATCH_CONNECT_TIMEOUT = 1.0
    settings.TASK_DISPATCH_READ_TIMEOUT = 1.0
    return settings


@pytest.fixture(scope="session")
def make_httpserver():
    """pytest-httpserver's server behind its `httpserver` fixture, here on
    127.0.0.1 and threaded (the app's dispatch pool sends side by side)."""
    from pytest_httpserver import HTTPServer

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture
def fake_n8n(httpserver, settings):
    """The `httpserver` fixture as N8N_BASE_URL: a test says what n8n answers
    (`fake_n8n.expect_request(path, method="POST").respond_with_json(...)`), reads
    what it got from `fake_n8n.log`, and fails if n8n got a request no
    expectation matched."""
    settings.N8N_BASE_URL = httpserver.url_for("").rstrip("/")
    yield httpserver
    httpserver.check()


@pytest.fixture
def n8n_at(settings):
    """Point dispatches at a stand-in n8n (tests/standins.py), with the stream reader on."""

    def point(server):
        settings.N8N_BASE_URL = server.base_url
        settings.TASK_STREAM_READER = True
        return server

    return point


@pytest.fixture
def close_streams():
    """No stream reader outlives its test (and its database)."""
    yield
    from tasks.outbound import streaming

    streaming.close_all()


@pytest.fixture
def make_user(db):
    def make(username="alice", password="a-long-Passphrase-42", **extra):
        return get_user_model().objects.create_user(username=username, password=password, **extra)

    return make


@pytest.fixture
def user(make_user):
    return make_user("alice")


@pytest.fixture
def other_user(make_user):
    return make_user("mallory")


@pytest.fixture
def user_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def other_client(other_user):
    from django.test import Client

    other = Client()
    other.force_login(other_user)
    return other


# CI runs the suite twice: on the embedded defaults, then on PostgreSQL + Redis.
# In the first pass (.ci/run sets TESTS_DEFER_REAL_PARTS=1) the tests that need
# PostgreSQL or Redis are deselected, not skipped: they run, and must pass, in
# the second. Anywhere else they skip with a reason, or fail under CI=true.
DEFERRED_FIXTURES = {
    "postgres_only": lambda: connection.vendor == "postgresql",
    "redis_url": lambda: bool(os.environ.get("REDIS_URL")),
}


def pytest_collection_modifyitems(config, items):
    # A test of the embedded default's own machinery (SQLite's full-text
    # triggers) has nothing to test on PostgreSQL: deselected there, not skipped.
    if connection.vendor != "sqlite":
        embedded = [item for item in items if "sqlite_only" in getattr(item, "fixturenames", ())]
        if embedded:
            config.hook.pytest_deselected(items=embedded)
            items[:] = [item for item in items if item not in embedded]
    if os.environ.get("TESTS_DEFER_REAL_PARTS") != "1":
        return
    deferred = [
        item
        for item in items
        if any(
            name in getattr(item, "fixturenames", ()) and not available()
            for name, available in DEFERRED_FIXTURES.items()
        )
    ]
    if deferred:
        config.hook.pytest_deselected(items=deferred)
        items[:] = [item for item in items if item not in deferred]
        print(f"\n{len(deferred)} tests need PostgreSQL or Redis: deselected for CI's second pass")


@pytest.fixture
def sqlite_only(db):
    """For tests of SQLite's own machinery: deselected on other databases."""
    assert connection.vendor == "sqlite"


@pytest.fixture
def postgres_only(db):
    support.need(
        connection.vendor == "postgresql",
        "needs PostgreSQL: set DATABASE_URL=postgres://… (CI runs the suite on it)",
    )


@pytest.fixture
def redis_url():
    url = os.environ.get("REDIS_URL", "")
    support.need(bool(url), "needs Redis: set REDIS_URL=redis://… (CI runs the suite with it)")
    return url


# The websocket fixtures (a flushed in-memory layer, session cookies) live with their helpers.
from tests.ws_support import alice_cookie, fresh_layer, mallory_cookie, no_dispatch  # noqa: E402, F401


@pytest.fixture
def media(settings, tmp_path):
    """Uploaded files go to a folder of the test's own, on the file system."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    }
    return tmp_path / "media"
