"""/healthz really touches the database and the channel layer."""

import pytest

pytestmark = pytest.mark.django_db


def test_healthz_is_ok_when_both_answer(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"database": "ok", "channel_layer": "ok", "worker": "unknown"}


def test_healthz_is_503_naming_a_failing_channel_layer(client, settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # Nothing listens on port 1: the layer cannot be reached.
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
        }
    }
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    try:
        response = client.get("/healthz")
    finally:
        channel_layers.backends.clear()
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "ok"
    assert body["channel_layer"].startswith("error")


def test_healthz_is_503_naming_a_failing_database(client, monkeypatch):
    from chatproject import views

    def broken():
        raise RuntimeError("database unreachable")

    monkeypatch.setattr(views, "check_database", broken)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"].startswith("error")
    assert response.json()["channel_layer"] == "ok"


def test_healthz_reports_a_fresh_worker_heartbeat(client):
    from tasks import worker

    worker.beat()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["worker"] == "ok"


def test_healthz_is_503_when_the_worker_stopped_beating(client, settings):
    from datetime import timedelta

    from django.utils import timezone

    from tasks import worker

    settings.TASKS_WORKER_HEARTBEAT_MAX_AGE = 30
    worker.beat(now=timezone.now() - timedelta(seconds=31))
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["worker"] == "stale"


def test_a_worker_pass_beats(db):
    from tasks import worker

    assert worker.heartbeat_age() is None
    worker.Worker().run_once()
    assert worker.heartbeat_age() < 5


def test_healthz_answers_503_at_once_when_postgresql_is_unreachable(client, postgres_only):
    from django.db import connection

    settings_dict = dict(connection.settings_dict)
    try:
        connection.settings_dict["PORT"] = "1"  # nothing listens
        response = client.get("/healthz")
    finally:
        connection.settings_dict.update(settings_dict)
    assert response.status_code == 503
    assert response.json()["database"] == "error"
