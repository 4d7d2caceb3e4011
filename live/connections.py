"""Database work on threads Django's request cycle does not manage.

A consumer's queries (`off_thread` in live/consumers.py) and a stream's
writes (tasks/outbound/streaming.py) run on pool threads that may wait long between two
calls: each call gets a usable connection before it and leaves none stale
after it (on PostgreSQL they go back to the pool), as Channels does for
`database_sync_to_async`.
"""

import functools

from django.db import close_old_connections


def fresh_connections(function):
    """`function` with stale connections closed before and after each call."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        close_old_connections()
        try:
            return function(*args, **kwargs)
        finally:
            close_old_connections()

    return wrapper
