"""Django's PostgreSQL backend whose connection pool checks a connection
without a round trip (ENGINE `chatproject.postgresql`, set by the settings
for a `postgres://` DATABASE_URL).

With `CONN_HEALTH_CHECKS` Django gives psycopg-pool its `check_connection`,
which runs an empty statement on every connection it hands out: a round trip
to the server at the start of every request, every streamed piece's write and
every worker step, the largest single item of a streamed reply's CPU on the
server that reads it. `check_connection` here asks the socket instead: an idle
connection the server has not written to since its last answer is usable, so
it is handed out as it is; when the server has said something (the notice and
end of file of a restart or `pg_terminate_backend`, a notification), the round
trip runs and a dead connection is replaced before a request gets it. What it
cannot see is a server that vanished without a word (a cut cable): that request
fails as it would have failed on the round trip's timeout. A connection found
ended makes the pool check all its idle ones at once (a restart ended them all).
"""

import select
from functools import partial

from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool


def check_connection(conn, pool=None) -> None:
    """Raise if `conn` is not fit to hand out; a round trip only if the server
    has written to it since its last answer. When the server has ended it,
    the other idle connections of `pool` are checked at once: after a
    restart they are all gone, and psycopg-pool waits 1, 2, 4… seconds
    between two failed checks of one request, which would meet them one by
    one (five dead connections: past the pool's 10 s timeout)."""
    if conn.closed or conn.broken:
        raise ConnectionError("the connection is closed")
    poller = select.poll()
    poller.register(conn.pgconn.socket, select.POLLIN | select.POLLERR | select.POLLHUP)
    if not poller.poll(0):
        return
    try:
        ConnectionPool.check_connection(conn)
    except Exception:
        if pool is not None:
            pool.check()  # each idle one by a round trip; the dead replaced
        raise


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        pool = super().pool
        # Django passes psycopg-pool's own check (CONN_HEALTH_CHECKS) and takes no
        # other: swap it once, where the pool keeps it.
        if pool is not None and pool._check is ConnectionPool.check_connection:
            pool._check = partial(check_connection, pool=pool)
        return pool
