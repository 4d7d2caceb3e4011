"""The Redis cache keeps one connection pool per process (chatproject/cache.py):
a request that reads a signed-in user's session under ASGI does not open a
new connection to Redis."""

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator

from chatproject.cache import SharedPoolRedisCache


def test_cache_objects_share_one_pool_per_server(redis_url):
    first = SharedPoolRedisCache(redis_url, {})
    second = SharedPoolRedisCache(redis_url, {})
    other = SharedPoolRedisCache(redis_url.rsplit("/", 1)[0] + "/15", {})
    pool = first._cache._get_connection_pool(write=True)
    assert second._cache._get_connection_pool(write=True) is pool
    assert other._cache._get_connection_pool(write=True) is not pool


@pytest.mark.django_db(transaction=True)
def test_signed_in_requests_under_asgi_reuse_their_redis_connections(
    redis_url, settings, client, user
):
    from chatproject.asgi import application

    settings.CACHES = {
        "default": {"BACKEND": "chatproject.cache.SharedPoolRedisCache", "LOCATION": redis_url}
    }
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    server = redis.Redis.from_url(redis_url)

    def page():
        communicator = HttpCommunicator(
            application, "GET", "/chat/", headers=[(b"host", b"127.0.0.1"), (b"cookie", cookie)]
        )
        response = async_to_sync(communicator.get_response)(timeout=10)
        assert response["status"] == 200

    page()
    before = server.info("stats")["total_connections_received"]
    for _ in range(20):
        page()
    opened = server.info("stats")["total_connections_received"] - before
    assert opened <= 3, f"{opened} new Redis connections for 20 requests"
