"""While the cache (Redis) is down, limits fail open: sends go through, no 500."""

import logging

import pytest

from chat.models import Message
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def dead_cache(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens
        }
    }


def test_a_send_goes_through_while_the_cache_is_unreachable(
    user_client, user, dead_cache, caplog, monkeypatch
):
    from tasks.outbound import dispatch

    monkeypatch.setattr(dispatch, "schedule_dispatch", lambda task_id: None)
    conversation = factories.conversation(user)
    with caplog.at_level(logging.WARNING):
        response = user_client.post(
            f"/chat/{conversation.pk}/messages/",
            {"content": "hello during an outage"},
            HTTP_ACCEPT="application/json",
        )
    assert response.status_code == 201
    assert Message.objects.filter(conversation=conversation).count() == 1
    assert "the cache is unreachable" in caplog.text
