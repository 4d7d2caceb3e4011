"""A local server that answers dispatches the way n8n's Streaming response mode
does: headers at once (`Transfer-Encoding: chunked`, no length), then one JSON
object per line, with pauses, as a script says.

The server runs on its own asyncio loop thread, so hundreds of open streams
cost it no threads. A script is a list of steps, each a tuple:
- ("line", {...}) writes one JSON chunk (one line), ("raw", "text") any text;
- ("sleep", seconds) pauses;
- ("end",) finishes the body properly; ("break",) drops the connection
  mid-body; ("hang",) keeps it open until the client goes.
"""

import asyncio
import json
import threading
import time

import pytest


@pytest.fixture
def close_streams():
    """No stream reader outlives its test (and its database)."""
    yield
    from tasks import streaming

    streaming.close_all()


@pytest.fixture
def n8n_at(settings):
    """Point dispatches at a stand-in server, with the stream reader on."""

    def point(server):
        settings.N8N_BASE_URL = server.base_url
        settings.TASK_STREAM_READER = True
        return server

    return point


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


class StreamingN8n:
    def __init__(self, script):
        self.script = list(script)
        self.requests = []
        # (time.time(), content) of every `item` written, for `make bench`.
        self.written = []
        self.open = 0
        self.closed_by_client = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        # Listening from here on, so its address is known before `with`.
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self.handle, "127.0.0.1", 0, backlog=1024), self.loop
        ).result(5)
        self.port = self.server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        async def stop():
            self.server.close()
            # Streams still being written (a script longer than the test) end here.
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    async def handle(self, reader, writer):
        self.open += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append({"path": lines[0].split(" ")[1], "body": json.loads(body)})
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
                b"Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n\r\n"
            )
            await writer.drain()
            for step in self.script:
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
                    break
                elif kind == "break":
                    writer.transport.abort()
                    return
                elif kind == "hang":
                    # Until the client closes: read returns b"" then.
                    await reader.read()
                    self.closed_by_client += 1
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            self.closed_by_client += 1
        finally:
            self.open -= 1
            writer.close()
