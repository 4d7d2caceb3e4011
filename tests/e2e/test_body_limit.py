"""Oversized bodies are refused by the server before they are read: a real
Daphne process (the `daphne` command, as in production) answers 413 as soon as
it sees the length, or as soon as a chunked body passes the limit, and does
not grow by the body's size."""

import json
import select
import socket
import time

import pytest

from tests import support

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 64 * 1024
FILE_LIMIT = 256 * 1024
# The send form takes files: its limit is what the attachment limits allow.
SEND_LIMIT = 2 * FILE_LIMIT + LIMIT


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker):
    env = {
        "TASK_WEBHOOK_MAX_BYTES": str(LIMIT),
        "DATA_UPLOAD_MAX_MEMORY_SIZE": str(LIMIT),
        "ATTACHMENT_MAX_BYTES": str(FILE_LIMIT),
        "ATTACHMENT_MAX_FILES": "2",
    }
    with django_db_blocker.unblock(), support.Server(env=env) as running:
        yield running


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def open_request(server, head: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(head.encode())
    return sock


def read_answer(sock) -> bytes:
    data = b""
    sock.settimeout(10)
    try:
        while b"\r\n\r\n" not in data or len(data) < data.index(b"\r\n\r\n") + 4 + 10:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def head(path, length=None, chunked=False):
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    else:
        lines.append(f"Content-Length: {length}")
    return "\r\n".join(lines) + "\r\n\r\n"


def test_a_webhook_body_over_the_limit_gets_413_json_before_it_is_sent(server):
    sock = open_request(server, head("/tasks/1/webhook/", length=50 * 1024 * 1024))
    answer = read_answer(sock)  # nothing of the body was sent
    sock.close()
    status, _, rest = answer.partition(b"\r\n")
    assert status.startswith(b"HTTP/1.1 413")
    body = rest.split(b"\r\n\r\n", 1)[1]
    assert "larger than" in json.loads(body)["error"]


def test_any_other_post_over_the_limit_gets_413_before_it_is_sent(server):
    sock = open_request(server, head("/accounts/login/", length=LIMIT + 1))
    answer = read_answer(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 413")


def test_the_send_form_takes_bodies_up_to_what_its_files_allow(server):
    # Past the usual limit but within two files: it reaches the app (which
    # answers for its own reasons: no session, no CSRF token).
    sock = open_request(server, head("/chat/1/messages/", length=SEND_LIMIT))
    sock.sendall(b"x" * SEND_LIMIT)
    answer = read_answer(sock)
    sock.close()
    assert not answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_the_send_form_refuses_more_than_its_files_allow_in_plain_words(server):
    sock = open_request(server, head("/chat/1/messages/", length=SEND_LIMIT + 1))
    answer = read_answer(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"at most 2 files" in answer
    # Only that URL: the others keep the usual limit.
    sock = open_request(server, head("/chat/1/rename/", length=LIMIT + 1))
    assert read_answer(sock).startswith(b"HTTP/1.1 413")
    sock.close()


def send_until_answered(sock, pieces):
    """Send pieces like a client that watches for an early answer (as browsers and
    curl do); return (bytes sent, the answer)."""
    sent = 0
    for piece in pieces:
        if select.select([sock], [], [], 0)[0]:
            break
        try:
            sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += len(piece)
    return sent, read_answer(sock)


def test_a_chunked_body_is_cut_off_once_past_the_limit(server):
    sock = open_request(server, head("/tasks/1/webhook/", chunked=True))
    chunk = b"x" * 16384
    piece = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent, answer = send_until_answered(sock, (piece for _ in range(640)))  # 10 MiB offered
    sock.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 10 * 1024 * 1024


def test_a_50_mb_body_does_not_grow_the_server(server):
    pid = server.process.pid
    before = rss_kib(pid)
    sock = open_request(server, head("/tasks/1/webhook/", length=50 * 1024 * 1024))
    block = b"x" * (1024 * 1024)
    sent, answer = send_until_answered(sock, (block for _ in range(50)))
    sock.close()
    assert answer.startswith(b"HTTP/1.1 413")
    assert sent < 50 * 1024 * 1024, "the answer came only after the whole body"
    time.sleep(0.5)
    grown_mib = (rss_kib(pid) - before) / 1024
    assert grown_mib < 10, f"the server grew by {grown_mib:.1f} MiB"


def test_a_client_that_keeps_sending_is_cut_off(server):
    sock = open_request(server, head("/accounts/login/", length=50 * 1024 * 1024))
    block = b"x" * (256 * 1024)
    started = time.monotonic()
    sent = 0
    try:
        while time.monotonic() - started < 15:
            sock.sendall(block)  # ignores the answer on purpose
            sent += len(block)
    except (BrokenPipeError, ConnectionResetError):
        pass
    sock.close()
    assert time.monotonic() - started < 10, "a refused connection was never cut"


def test_bodies_within_the_limit_still_reach_the_app(server):
    body = json.dumps({"status": "processing"})
    sock = open_request(server, head("/tasks/999999/webhook/", length=len(body)) + body)
    answer = read_answer(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 404")  # the view answered: no such task


def test_make_runs_server_refuses_too(django_db_setup, django_db_blocker):
    """`make run` serves with `manage.py runserver` (Daphne's): the same refusal."""
    import subprocess
    import sys

    port = support.free_port()
    env = support.Server(port=port).env()
    env.update({"TASK_WEBHOOK_MAX_BYTES": str(LIMIT), "TASKS_WORKER_IN_PROCESS": "0"})
    log = open(support.BASE_DIR / "artifacts" / f"runserver-{port}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=support.BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        with django_db_blocker.unblock():
            support.wait_for_http(f"http://127.0.0.1:{port}/healthz", process=process)
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(head("/tasks/1/webhook/", length=50 * 1024 * 1024).encode())
        answer = read_answer(sock)
        sock.close()
        assert answer.startswith(b"HTTP/1.1 413")
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
