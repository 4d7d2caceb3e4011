"""On PostgreSQL the pool checks a connection it hands out by asking its
socket (chatproject/postgresql/base.py): no round trip for a connection the
server has not spoken on, and a connection the server ended is replaced
before a request gets it."""

import threading
import time
from unittest import mock

import pytest
from django.db import connection, connections
from psycopg_pool import ConnectionPool

from chatproject.postgresql.base import check_connection


@pytest.fixture
def pooled(postgres_only):
    support_pool = connection.pool
    assert support_pool is not None, "the PostgreSQL settings use Django's pool"
    return support_pool


def _in_a_thread(work):
    """`work()` in a new thread, which takes its own connection from the pool
    and gives it back; what it returned or raised."""
    out = {}

    def run():
        try:
            out["value"] = work()
        except Exception as error:  # noqa: BLE001 - handed back to the test
            out["error"] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    if "error" in out:
        raise out["error"]
    return out["value"]


def _backend_pid():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_the_pool_checks_with_the_socket(pooled):
    assert pooled._check is check_connection


def test_an_idle_connection_is_handed_out_without_a_round_trip(pooled):
    conn = pooled.getconn()
    try:
        with mock.patch.object(ConnectionPool, "check_connection") as round_trip:
            check_connection(conn)
        round_trip.assert_not_called()
    finally:
        pooled.putconn(conn)


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_ended_is_replaced_before_a_request_gets_it(pooled):
    # Every idle connection of the pool has been used once, then the server ends
    # them all (as a restart does): the next request still gets a working one.
    pids = {_in_a_thread(_backend_pid) for _ in range(4)}
    mine = _backend_pid()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        others = {row[0] for row in cursor.fetchall()}
        assert pids - {mine} <= others
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
