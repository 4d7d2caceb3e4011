"""The stand-in for n8n that pytest-httpserver cannot play: one asyncio server
on a loop thread of its own, shared by the tests, `make bench` and `make chaos`.

By default it answers every request the way n8n's Streaming response mode does:
headers at once (`Transfer-Encoding: chunked`, no length), then one JSON object
per line, with pauses, as a script says. Hundreds of open streams cost it no
threads (werkzeug's threaded server, behind pytest-httpserver, spends one per
stream). A script is a list of steps, each a tuple:
- ("line", {...}) writes one JSON chunk (one line), ("raw", "text") any text;
- ("sleep", seconds) pauses;
- ("end",) finishes the body properly; ("break",) drops the connection
  mid-body; ("hang",) keeps it open until the client goes.

A `handler` instead decides each answer from the `Request` (plainly or as a
coroutine): a script to stream, an `Answer` (a plain JSON answer; the
connection stays open for the next request), or None (the connection closes
with no answer). Chaos's workflow-shaped n8n (chaos/standin.py) and bench's
slow n8n (bench/fake_n8n.py) are handlers.

Not for pytest: bench and chaos import it. Its fixtures (`n8n_at`,
`close_streams`) are in tests/conftest.py.
"""

import asyncio
import inspect
import json
import threading
import time
from http import HTTPStatus


def item(text, node="Agent"):
    return (
        "line",
        {
            "type": "item",
            "content": text,
            "metadata": {
                "nodeId": "n1",
                "nodeName": node,
                "itemIndex": 0,
                "runIndex": 0,
                "timestamp": int(time.time() * 1000),
            },
        },
    )


def chunk(kind, **extra):
    return ("line", {"type": kind, "metadata": {"nodeId": "n1", "nodeName": "Agent"}, **extra})


class Request:
    def __init__(self, method, target, headers, body):
        self.method = method
        self.path, _, self.query = target.partition("?")
        self.target = target
        self.headers = headers  # names in lower case
        self.body = body

    def json(self):
        return json.loads(self.body) if self.body else None


class Answer:
    """A plain answer: a status and a JSON body with its length."""

    def __init__(self, status, body):
        self.status = status
        self.data = json.dumps(body).encode()


class N8nStandin:
    """Listening from construction on (its address is known before `with`) until
    the `with` block ends or `close()`; `listen()` opens the port again."""

    def __init__(self, script=(), *, handler=None, port=0, keep_alive=True):
        self.script = list(script)
        self.handler = handler
        self.port = port
        self.keep_alive = keep_alive
        # {"path", "body"} of every request (the body decoded when it is JSON).
        self.requests = []
        # (time.time(), content) of every `item` written, for `make bench`.
        self.written = []
        self.open = 0
        self.closed_by_client = 0
        self.server = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="n8n")
        self.thread.start()
        self.listen()

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    def listen(self):
        async def start():
            return await asyncio.start_server(self.handle, "127.0.0.1", self.port, backlog=1024)

        self.server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(5)
        self.port = self.server.sockets[0].getsockname()[1]

    def close_port(self):
        """Stop listening (a connection is refused); open connections go on."""
        if self.server is not None:
            server, self.server = self.server, None

            async def close():
                server.close()

            asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)

    def close(self):
        async def stop():
            if self.server is not None:
                self.server.close()
            # Streams still being written (a script longer than the test) end here.
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        if self.loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.server = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    def serve_forever(self):
        """For a process that is only this stand-in: until it is killed."""
        self.thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- one connection ------------------------------------------------------------

    async def handle(self, reader, writer):
        self.open += 1
        try:
            first = True
            while True:
                request = await self.read_request(reader, first)
                if request is None:
                    return
                first = False
                self.record(request)
                answer = self.handler(request) if self.handler else self.script
                if inspect.isawaitable(answer):
                    answer = await answer
                if answer is None:
                    return
                if isinstance(answer, Answer):
                    await self.answer(writer, answer, request)
                    if not (self.keep_alive and request.headers.get("connection") != "close"):
                        return
                    continue
                await self.stream(reader, writer, answer)
                return
        except (ConnectionError, asyncio.IncompleteReadError):
            self.closed_by_client += 1
        except asyncio.CancelledError:
            pass  # closing: the connection's own task ends quietly (asyncio logs it otherwise)
        finally:
            self.open -= 1
            writer.close()

    async def read_request(self, reader, first):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if first or exc.partial:
                raise
            return None  # the client closed a kept-alive connection
        lines = head.decode("latin-1").split("\r\n")
        method, target, *_ = lines[0].split(" ")
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return Request(method, target, headers, body)

    def record(self, request):
        try:
            body = request.json()
        except ValueError:
            body = request.body
        self.requests.append({"path": request.path, "body": body})

    async def answer(self, writer, answer, request):
        close = not (self.keep_alive and request.headers.get("connection") != "close")
        head = (
            f"HTTP/1.1 {answer.status} {HTTPStatus(answer.status).phrase}\r\n"
            "Content-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(answer.data)}\r\n"
            + ("Connection: close\r\n" if close else "")
            + "\r\n"
        )
        writer.write(head.encode() + answer.data)
        await writer.drain()

    async def stream(self, reader, writer, script):
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
            b"Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n\r\n"
        )
        await writer.drain()
        for step in script:
            kind = step[0]
            if kind in ("line", "raw"):
                data = json.dumps(step[1]) + "\n" if kind == "line" else step[1]
                payload = data.encode()
                writer.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
                await writer.drain()
                if kind == "line" and step[1].get("type") == "item":
                    self.written.append((time.time(), step[1].get("content")))
            elif kind == "sleep":
                await asyncio.sleep(step[1])
            elif kind == "end":
                writer.write(b"0\r\n\r\n")
                await writer.drain()
                return
            elif kind == "break":
                writer.transport.abort()
                return
            elif kind == "hang":
                # Until the client closes: read returns b"" then.
                await reader.read()
                self.closed_by_client += 1
                return
