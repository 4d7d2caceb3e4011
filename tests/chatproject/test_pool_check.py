"""On PostgreSQL the pool checks a connection it hands out by asking its
socket (chatproject/postgresql/base.py): no round trip for a connection the
server has not spoken on, and a connection the server ended is replaced
before a request gets it."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import pytest
from django.db import connection, connections
from psycopg_pool import ConnectionPool

from chatproject.postgresql.base import check_connection


@pytest.fixture
def pooled(postgres_only):
    pool = connection.pool
    assert pool is not None, "the PostgreSQL settings use Django's pool"
    return pool


def _closing(work):
    """`work()` in this thread, whose connection goes back to the pool after."""
    try:
        return work()
    finally:
        connections.close_all()


def _in_a_thread(work):
    """`work()` in a new thread, with a connection of its own from the pool;
    what it returned, or its exception raised here."""
    with ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(_closing, work).result(timeout=30)


def _backend_pid():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_the_pool_checks_with_the_socket(pooled):
    assert pooled._check.func is check_connection
    assert pooled._check.keywords == {"pool": pooled}


def test_an_idle_connection_is_handed_out_without_a_round_trip(pooled):
    conn = pooled.getconn()
    try:
        with mock.patch.object(ConnectionPool, "check_connection") as round_trip:
            check_connection(conn)
        round_trip.assert_not_called()
    finally:
        pooled.putconn(conn)


def _hold_at_once(count):
    """`count` threads hold a connection of the pool at the same time, then
    give them back: the pool has at least `count` idle connections."""
    barrier = threading.Barrier(count)

    def hold():
        _backend_pid()
        barrier.wait(30)

    with ThreadPoolExecutor(max_workers=count) as executor:
        for future in [executor.submit(_closing, hold) for _ in range(count)]:
            future.result(timeout=30)


@pytest.mark.django_db(transaction=True)
def test_connections_the_server_ended_are_replaced_before_a_request_gets_one(pooled):
    # Idle connections in the pool, then the server ends them all (as a
    # restart does): the next requests get working ones, within the pool's
    # timeout (met one by one, with psycopg-pool's waits of 1, 2, 4, 8 s
    # between failed checks, the fifth would be past it).
    _hold_at_once(8)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        others = {row[0] for row in cursor.fetchall()}
        assert len(others) >= 5
        for pid in others:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [list(others)]
            )
            if cursor.fetchone()[0] == 0:
                break
            time.sleep(0.05)
    time.sleep(0.1)  # the end-of-file reaches each socket
    fresh = {_in_a_thread(_backend_pid) for _ in range(4)}
    assert not fresh & others
