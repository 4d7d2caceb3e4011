"""Sessions stored in the database and read through the cache, as Django's
`cached_db` engine does, except that an unreachable cache is read as empty and
written as nothing: while Redis is down, sessions come from the database alone
(as the abuse limits fail open, accounts/limits.py), and nobody is signed out
or answered 500.

Set as SESSION_ENGINE in chatproject/settings.py: a request of a signed-in
user then reads its session without an SQL statement.
"""

import logging

from django.contrib.sessions.backends import cached_db

logger = logging.getLogger(__name__)


class _Forgiving:
    """The session cache, with every failure logged and taken as a miss."""

    def __init__(self, cache):
        self.cache = cache

    def _failed(self, what):
        logger.warning("sessions: the cache is unreachable (%s); using the database", what)

    def get(self, key, default=None):
        try:
            return self.cache.get(key, default)
        except Exception:  # noqa: BLE001 - any backend's connection error
            self._failed("get")
            return default

    def set(self, key, value, timeout=None):
        try:
            self.cache.set(key, value, timeout)
        except Exception:  # noqa: BLE001
            self._failed("set")

    def delete(self, key):
        try:
            self.cache.delete(key)
        except Exception:  # noqa: BLE001
            self._failed("delete")

    def __contains__(self, key):
        try:
            return key in self.cache
        except Exception:  # noqa: BLE001
            self._failed("has_key")
            return False

    async def aget(self, key, default=None):
        try:
            return await self.cache.aget(key, default)
        except Exception:  # noqa: BLE001
            self._failed("get")
            return default

    async def aset(self, key, value, timeout=None):
        try:
            await self.cache.aset(key, value, timeout)
        except Exception:  # noqa: BLE001
            self._failed("set")

    async def adelete(self, key):
        try:
            await self.cache.adelete(key)
        except Exception:  # noqa: BLE001
            self._failed("delete")


class SessionStore(cached_db.SessionStore):
    def __init__(self, session_key=None):
        super().__init__(session_key)
        self._cache = _Forgiving(self._cache)
