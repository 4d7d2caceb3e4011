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
fails as it would have failed on the round trip's timeout.
"""

import select

from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool


def check_connection(conn) -> None:
    """Raise if `conn` is not fit to hand out; a round trip only if the server
    has written to it since its last answer."""
    if conn.closed or conn.broken:
        raise ConnectionError("the connection is closed")
    poller = select.poll()
    poller.register(conn.pgconn.socket, select.POLLIN | select.POLLERR | select.POLLHUP)
    if poller.poll(0):
        ConnectionPool.check_connection(conn)


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        pool = super().pool
        # Django passes psycopg-pool's own check (CONN_HEALTH_CHECKS) and takes no
        # other: swap it once, where the pool keeps it.
        if pool is not None and pool._check is ConnectionPool.check_connection:
            pool._check = check_connection
        return pool
