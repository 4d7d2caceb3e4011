"""The streaming figures of `make bench`: a piece n8n writes → its `message.delta`
frame at a browser's socket, 200 concurrent streams on one server process, and
Stop → the `cancelled` frame.

n8n is played by tests.standins.N8nStandin (its Streaming response
mode: chunked JSON lines, each `item` written at a known time). Each figure is
read beside the trivial GET of the same server in the same run.
"""

import asyncio
import json
import time

PIECE_GAP_SECONDS = 0.25  # more than the 50 ms coalescing window: a frame per piece
LATENCY_SENDS = 12
PIECES = 8
STOP_SENDS = 10
STREAMS = 200


def _script(pieces, gap, tag):
    from tests.standins import chunk, item

    steps = [chunk("begin")]
    for i in range(pieces):
        steps += [("sleep", gap), item(f"{tag}{i} ")]
    return [*steps, chunk("end"), ("end",)]


# What a streamed reply looks like to the renderer (chat/markdown/streaming.py): the
# 200-stream figure is measured with every reply formatted as it grows.
MARKDOWN_PIECES = (
    "## Part {i}\n\n",
    "Some **bold {i}** words, *emphasis* and `code` ",
    "with $x^{i}$ math.\n\n- an item\n- another **{i}**\n\n",
    "| a | b |\n|---|---|\n| {i} | x |\n\n",
)


def _markdown_script(pieces, gap, tag):
    from tests.standins import chunk, item

    steps = [chunk("begin")]
    for i in range(pieces):
        piece = MARKDOWN_PIECES[i % len(MARKDOWN_PIECES)].format(i=f"{tag}{i}")
        steps += [("sleep", gap), item(piece)]
    return [*steps, chunk("end"), ("end",)]


class Browser:
    """One signed-in user's HTTP session (cookie and CSRF token) on one server."""

    def __init__(self, srv, user):
        import requests

        from bench.run import session_cookie

        self.srv = srv
        self.session = requests.Session()
        self.session.headers["Cookie"] = session_cookie(user)
        first = self.session.get(f"{srv.base_url}/chat/")
        self.csrf = first.cookies.get("csrftoken") or self.session.cookies.get("csrftoken")
        self.session.headers["Cookie"] += f"; csrftoken={self.csrf}"
        self.cookie = self.session.headers["Cookie"]

    def post(self, path, data=None):
        response = self.session.post(
            self.srv.base_url + path,
            data=data or {},
            headers={"Accept": "application/json", "X-CSRFToken": self.csrf},
        )
        if response.status_code not in (200, 201):
            raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:200]}")
        return response.json()

    def send(self, conversation):
        return self.post(f"/chat/{conversation.pk}/messages/", {"content": "Stream to me"})

    def socket(self, conversation):
        from websockets.asyncio.client import connect

        from bench.run import origin_of

        url = f"ws://127.0.0.1:{self.srv.port}/ws/chat/{conversation.pk}/"
        return connect(url, additional_headers={"Cookie": self.cookie, "Origin": origin_of(url)})


async def _frames_until(socket, done, timeout=30):
    """Yield (time.time(), frame) until done(frame) or the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), deadline - time.monotonic()))
        yield time.time(), frame
        if done(frame):
            return


async def _piece_latency(browser, conversations, n8n):
    loop = asyncio.get_running_loop()
    samples = []
    for conversation in conversations:
        async with browser.socket(conversation) as socket:
            mark = len(n8n.written)
            sent = await loop.run_in_executor(None, browser.send, conversation)
            task_id = sent["task"]["id"]
            arrived = {}  # piece -> when the frame carrying it arrived
            async for at, frame in _frames_until(socket, lambda f: False, timeout=15):
                if frame.get("type") == "message.delta" and frame.get("task_id") == task_id:
                    for piece in frame["text"].split(" "):
                        if piece:
                            arrived.setdefault(f"{piece} ", at)
                if len(arrived) == PIECES:
                    break
        written = {content: at for at, content in n8n.written[mark : mark + PIECES]}
        samples += [arrived[piece] - at for piece, at in written.items() if piece in arrived]
    return samples, len(n8n.written)


def piece_to_delta(server_factory, user, make_conversation):
    """A piece written by n8n → the `message.delta` carrying it, at a browser
    socket on the conversation; PIECES pieces per reply, LATENCY_SENDS replies."""
    from bench.run import trivial_get_latency
    from tests.standins import N8nStandin

    with N8nStandin(_script(PIECES, PIECE_GAP_SECONDS, "p")) as n8n:
        with server_factory(N8N_BASE_URL=n8n.base_url) as srv:
            trivial = trivial_get_latency(srv.base_url)
            browser = Browser(srv, user)
            conversations = [make_conversation(user, f"stream {i}") for i in range(LATENCY_SENDS)]
            samples, written = asyncio.run(_piece_latency(browser, conversations, n8n))
    return trivial, samples, written


async def _stop_latency(browser, conversations):
    loop = asyncio.get_running_loop()
    samples = []
    for conversation in conversations:
        async with browser.socket(conversation) as socket:
            sent = await loop.run_in_executor(None, browser.send, conversation)
            task_id = sent["task"]["id"]
            async for _at, frame in _frames_until(socket, lambda f: False, timeout=15):
                if frame.get("type") == "message.delta" and frame.get("task_id") == task_id:
                    break
            start = time.perf_counter()
            stop = loop.run_in_executor(None, browser.post, f"/tasks/{task_id}/cancel/")
            async for _at, frame in _frames_until(socket, lambda f: False, timeout=15):
                task = frame.get("task") or {}
                if task.get("id") == task_id and task.get("status") == "cancelled":
                    samples.append(time.perf_counter() - start)
                    break
            await stop
    return samples


def stop_to_cancelled(server_factory, user, make_conversation):
    """Stop (POST /tasks/{id}/cancel/) → the `cancelled` task.status frame, with
    the reply streaming (a piece every 200 ms)."""
    from tests.standins import N8nStandin

    with N8nStandin(_script(150, 0.2, "s")) as n8n:
        with server_factory(N8N_BASE_URL=n8n.base_url) as srv:
            browser = Browser(srv, user)
            conversations = [make_conversation(user, f"stop {i}") for i in range(STOP_SENDS)]
            return asyncio.run(_stop_latency(browser, conversations))


def many_streams(server_factory, user, make_conversation):
    """STREAMS replies streaming at once into one server process (a piece of
    Markdown a second each, formatted as it grows): its extra RSS, and the
    trivial GET p50 while they run ÷ before."""
    from bench.run import rss_kib, trivial_get_latency
    from tasks.models import AsyncTask
    from tests.standins import N8nStandin

    conversations = [make_conversation(user, f"many {i}") for i in range(STREAMS)]
    with N8nStandin(_markdown_script(90, 1.0, "m")) as n8n:
        with server_factory(N8N_BASE_URL=n8n.base_url) as srv:
            browser = Browser(srv, user)
            before_get = trivial_get_latency(srv.base_url, n=300)
            before_kib = rss_kib(srv.process.pid)
            task_ids = [browser.send(c)["task"]["id"] for c in conversations]
            deadline = time.monotonic() + 60
            while n8n.open < STREAMS and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(3)  # a few pieces into every stream
            open_streams = n8n.open
            during_kib = rss_kib(srv.process.pid)
            during_get = trivial_get_latency(srv.base_url, n=300)
            growing = AsyncTask.objects.filter(pk__in=task_ids).exclude(partial_text="").count()
            for task_id in task_ids:  # Stop them all: the streams close
                browser.post(f"/tasks/{task_id}/cancel/")
    return {
        "streams": STREAMS,
        "open_at_n8n": open_streams,
        "with_text_so_far": growing,
        "rss_before_mib": round(before_kib / 1024, 1),
        "rss_during_mib": round(during_kib / 1024, 1),
        "extra_rss_mib": round((during_kib - before_kib) / 1024, 1),
        "trivial_get_before": before_get,
        "trivial_get_during": during_get,
    }


def run(server_factory, user):
    """All three; returns the results' "streaming" section."""
    from bench.stats import ratio, summary_ms
    from chat.models import Conversation

    def make_conversation(owner, title):
        return Conversation.objects.create(user=owner, title=title)

    trivial, pieces, written = piece_to_delta(server_factory, user, make_conversation)
    stops = stop_to_cancelled(server_factory, user, make_conversation)
    many = many_streams(server_factory, user, make_conversation)
    piece = summary_ms(pieces)
    trivial_ms = summary_ms(trivial)
    before, during = (
        summary_ms(many.pop("trivial_get_before")),
        summary_ms(many.pop("trivial_get_during")),
    )
    return {
        "trivial_get_ms": trivial_ms,
        "piece_to_delta_ms": piece | {"pieces_written": written},
        "piece_to_delta_ratio": ratio(piece["p50"], trivial_ms["p50"]),
        "stop_to_cancelled_ms": summary_ms(stops),
        "many_streams": many
        | {
            "trivial_get_before_ms": before,
            "trivial_get_during_ms": during,
            "get_ratio": ratio(during["p50"], before["p50"]),
        },
    }


def goals(section):
    many = section["many_streams"]
    return {
        "piece_delta_p50_le_2x_trivial": (section["piece_to_delta_ratio"] or 99) <= 2,
        "streams_200_held_get_le_2x": (
            many["open_at_n8n"] == many["streams"] == many["with_text_so_far"]
            and (many["get_ratio"] or 99) <= 2
        ),
    }


def rows(section, mark):
    """The streaming rows of the bench's table."""
    piece, stop, many = (
        section["piece_to_delta_ms"],
        section["stop_to_cancelled_ms"],
        section["many_streams"],
    )
    met = goals(section)
    return [
        (
            "Streaming: piece written by n8n → `message.delta` at a socket p50/p95/p99",
            f"{piece['p50']} / {piece['p95']} / {piece['p99']} ms over {piece['n']} pieces"
            f" (p50 = {section['piece_to_delta_ratio']} × that server's trivial GET,"
            f" {section['trivial_get_ms']['p50']} ms)",
            "p50 ≤ 2 × trivial",
            mark(met["piece_delta_p50_le_2x_trivial"]),
        ),
        (
            f"{many['streams']} concurrent streams on one process: extra RSS;"
            " trivial GET p50 during ÷ before",
            f"{many['open_at_n8n']} open, {many['with_text_so_far']} with text; "
            f"{many['extra_rss_mib']} MiB ({many['rss_before_mib']} → {many['rss_during_mib']}); "
            f"{many['trivial_get_during_ms']['p50']} ÷ {many['trivial_get_before_ms']['p50']} ms"
            f" = {many['get_ratio']}",
            "all held, ratio ≤ 2",
            mark(met["streams_200_held_get_le_2x"]),
        ),
        (
            "Stop → `cancelled` frame p50/p95 (reply streaming)",
            f"{stop['p50']} / {stop['p95']} ms over {stop['n']} stops",
            "—",
            "",
        ),
    ]


if __name__ == "__main__":
    # The streaming part alone: `.venv/bin/python -m bench.streams`.
    from bench import run as bench

    bench.ensure_services()
    bench.fresh_database()
    bench.setup_django()
    print(json.dumps(run(bench.server, bench.make_user("bench")), indent=2))
