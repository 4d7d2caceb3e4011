"""Websocket limits: open sockets per user, and client frames per socket.

Open sockets are counted in slots: one per socket, in a Redis sorted set per
user when REDIS_URL is set (so every server process counts the same sockets),
in process memory otherwise. A slot carries an expiry that its socket pushes
forward every WS_SLOT_TTL_SECONDS / 3: a process that dies without closing its
sockets leaks nothing for longer than WS_SLOT_TTL_SECONDS.
"""

import asyncio
import logging
import time
import weakref

from django.conf import settings

logger = logging.getLogger(__name__)

# Drop the expired slots, refuse when the user holds `limit`, else add this one.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class LocalSlots:
    """One process: a dict of user id → {socket id: expiry}."""

    def __init__(self):
        self.slots = {}

    async def acquire(self, user_id, socket_id, limit, ttl):
        now = time.time()
        held = {s: exp for s, exp in self.slots.get(user_id, {}).items() if exp > now}
        if len(held) >= limit:
            self.slots[user_id] = held
            return False
        held[socket_id] = now + ttl
        self.slots[user_id] = held
        return True

    async def refresh(self, user_id, socket_id, ttl):
        self.slots.setdefault(user_id, {})[socket_id] = time.time() + ttl

    async def release(self, user_id, socket_id):
        held = self.slots.get(user_id, {})
        held.pop(socket_id, None)
        if not held:
            self.slots.pop(user_id, None)


class RedisSlots:
    """Every process: a sorted set per user, scored by each slot's expiry."""

    def __init__(self, url, prefix):
        self.url = url
        self.prefix = prefix
        # redis.asyncio clients belong to the event loop that made them.
        self._clients = weakref.WeakKeyDictionary()

    def _client(self):
        import redis.asyncio

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = redis.asyncio.Redis.from_url(self.url)
            client.acquire_script = client.register_script(_ACQUIRE)
            self._clients[loop] = client
        return client

    def key(self, user_id):
        return f"{self.prefix}:ws:user:{user_id}"

    async def acquire(self, user_id, socket_id, limit, ttl):
        now = time.time()
        client = self._client()
        granted = await client.acquire_script(
            keys=[self.key(user_id)], args=[now, limit, now + ttl, socket_id, int(ttl) + 1]
        )
        return bool(granted)

    async def refresh(self, user_id, socket_id, ttl):
        client = self._client()
        key = self.key(user_id)
        await client.zadd(key, {socket_id: time.time() + ttl})
        await client.expire(key, int(ttl) + 1)

    async def release(self, user_id, socket_id):
        await self._client().zrem(self.key(user_id), socket_id)


# This process's slot store, chosen from the settings on first use (None until then).
store = None


def slots():
    global store
    if store is None:
        if settings.REDIS_URL:
            store = RedisSlots(settings.REDIS_URL, settings.CACHE_KEY_PREFIX)
        else:
            store = LocalSlots()
    return store


class SocketSlot:
    """The slot of one socket: claim on connect, keep while open, free on close."""

    def __init__(self, user_id, socket_id):
        self.user_id = user_id
        self.socket_id = socket_id
        self.held = False
        self._keeper = None

    async def claim(self):
        limit = settings.WS_PER_USER_LIMIT
        if not limit:
            return True
        ttl = settings.WS_SLOT_TTL_SECONDS
        try:
            self.held = await slots().acquire(self.user_id, self.socket_id, limit, ttl)
        except Exception:  # noqa: BLE001 - a counter outage must not take the chat down
            logger.warning("websocket slots unavailable; socket let through", exc_info=True)
            return True
        if self.held:
            self._keeper = asyncio.create_task(self._keep(ttl))
        return self.held

    async def _keep(self, ttl):
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                await slots().refresh(self.user_id, self.socket_id, ttl)
            except Exception:  # noqa: BLE001 - the next round tries again
                logger.warning("could not refresh a websocket slot", exc_info=True)

    async def release(self):
        if self._keeper is not None:
            self._keeper.cancel()
            self._keeper = None
        if self.held:
            self.held = False
            try:
                await slots().release(self.user_id, self.socket_id)
            except Exception:  # noqa: BLE001 - it expires on its own
                logger.warning("could not release a websocket slot", exc_info=True)


class FrameBudget:
    """A token bucket: WS_FRAME_BURST frames at once, WS_FRAME_RATE per second after."""

    def __init__(self, rate=None, burst=None):
        self.rate = settings.WS_FRAME_RATE if rate is None else rate
        self.burst = settings.WS_FRAME_BURST if burst is None else burst
        self.tokens = float(self.burst)
        self.stamp = time.monotonic()

    def take(self):
        if not self.rate:
            return True
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False
