"""/healthz tells the public status words only; the exception goes to the log."""

import logging

import pytest

pytestmark = pytest.mark.django_db


def test_healthz_failure_shows_no_exception_text(client, monkeypatch, caplog):
    from chatproject import views

    def broken():
        raise RuntimeError("could not connect to postgres://admin:hunter2@db.internal:5432")

    monkeypatch.setattr(views, "check_database", broken)
    with caplog.at_level(logging.ERROR):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"database": "error", "channel_layer": "ok"}
    assert b"hunter2" not in response.content
    assert b"RuntimeError" not in response.content
    assert "hunter2" in caplog.text, "the detail belongs in the log"
