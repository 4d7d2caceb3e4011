"""Django's Redis cache with one connection pool per process.

Django's `RedisCache` keeps its Redis connection pool on the cache object,
and Django keeps one cache object per thread and per async context. Under
ASGI every request runs in a context of its own, so every request that read
the cache (a signed-in user's session, a rate limit) opened a new TCP
connection to Redis and dropped it afterwards: 101 connections for 100
signed-in page loads. Here the pools live in the process, one per server
URL and pool options, shared by every cache object; redis-py's pool is
thread-safe and starts afresh in a forked child.
"""

import threading

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

_pools: dict = {}
_pools_lock = threading.Lock()


class SharedPoolClient(RedisCacheClient):
    def __init__(self, servers, **options):
        super().__init__(servers, **options)
        # What besides the server URL tells the pools apart, worked out once
        # (the pool is looked up on every read of the cache).
        self._pools_key = (self._pool_class, repr(sorted(self._pool_options.items())))

    def _get_connection_pool(self, write):
        index = self._get_connection_pool_index(write)
        url = self._servers[index]
        key = (url, *self._pools_key)
        pool = _pools.get(key)
        if pool is None:
            with _pools_lock:
                pool = _pools.get(key)
                if pool is None:
                    pool = _pools[key] = self._pool_class.from_url(url, **self._pool_options)
        return pool


class SharedPoolRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = SharedPoolClient
