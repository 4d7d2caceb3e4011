"""A stand-in OpenAI-compatible model server on 127.0.0.1 for the n8n tests.

No model can run on the CI machine, so n8n's "OpenAI-compatible chat model"
node talks to this small server in the test process instead. It answers
POST /v1/chat/completions with a chat completion whose content carries a
<think> part and echoes the last user message, answers GET /v1/models, and
records every request so tests can look at the prompt.

A request with `"stream": true` (n8n's AI Agent streams) is answered the way
OpenAI streams: server-sent events, one `chat.completion.chunk` per piece of
the reply (`reply_pieces`), `piece_seconds` apart, then `data: [DONE]`.
`extra_pieces` appends that many more words (a long reply, to stop halfway);
`streams_cut` counts streams whose client hung up before the end (n8n stopping
the execution aborts its model call). Setting `fail_with` to an HTTP status
makes it answer that status with an OpenAI-style error body instead.

A vision request's user turn may be content parts (`{"type": "text"}`,
`{"type": "image_url", "image_url": {"url": "data:…"}}`): n8n's AI Agent sends
the item's binary images as a user message of their own after the prompt.
`user_parts` lists every part of a recorded request's user messages (a plain
string as one text part), and the reply echoes the last user message that has
text.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "standin-model"
THINKING = "stand-in reasoning"
REPLY_PREFIX = "Hello from the stand-in model, you said: "
ERROR_MESSAGE = "the stand-in model is overloaded"


def reply_pieces(text, extra=0):
    """The reply to `text`, in the pieces a streaming model would send."""
    words = f"{REPLY_PREFIX}{text}".split(" ")
    pieces = ["<think>", THINKING, "</think>"]
    pieces += [word + " " for word in words[:-1]] + [words[-1]]
    pieces += [f" word{n}" for n in range(extra)]
    return pieces


def reply_text(text, extra=0):
    """The whole reply (what the workflow's `completed` callback carries, <think> aside)."""
    return "".join(reply_pieces(text, extra)).split("</think>", 1)[1]


def user_parts(messages):
    """Every content part of the user messages, in order (a string is one text part)."""
    parts = []
    for message in messages or []:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, list):
            parts += [p for p in content if isinstance(p, dict)]
        else:
            parts.append({"type": "text", "text": str(content or "")})
    return parts


def last_user_text(messages):
    """The text of the last user message that has any (an images-only one is skipped)."""
    for message in reversed(messages or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # content parts
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            if str(content or "").strip():
                return str(content)
    return ""


class ModelStandin:
    def __init__(self):
        self.requests = []
        self.fail_with = None
        self.piece_seconds = 0.15
        self.extra_pieces = 0
        self.streams_started = 0
        self.streams_cut = 0
        self.streams_finished = 0
        self.lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, payload):
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _record(self, body):
                with standin.lock:
                    standin.requests.append(
                        {
                            "method": self.command,
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                        }
                    )

            def _stream(self, body, pieces):
                """OpenAI's streaming answer: server-sent events, a piece at a time."""
                ident = f"chatcmpl-standin-{len(standin.requests)}"
                model = body.get("model") or MODEL

                def event(delta, finish=None, **extra):
                    chunk = {
                        "id": ident,
                        "object": "chat.completion.chunk",
                        "created": int(time.time()),
                        "model": model,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                        **extra,
                    }
                    return f"data: {json.dumps(chunk)}\n\n".encode()

                with standin.lock:
                    standin.streams_started += 1
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Cache-Control", "no-cache")
                    self.end_headers()  # no length: the body ends when the connection closes
                    self.wfile.write(event({"role": "assistant", "content": ""}))
                    self.wfile.flush()
                    for piece in pieces:
                        time.sleep(standin.piece_seconds)
                        self.wfile.write(event({"content": piece}))
                        self.wfile.flush()
                    self.wfile.write(event({}, "stop"))
                    if (body.get("stream_options") or {}).get("include_usage"):
                        usage = {"prompt_tokens": 10, "completion_tokens": len(pieces)}
                        usage["total_tokens"] = usage["prompt_tokens"] + len(pieces)
                        final = {"id": ident, "object": "chat.completion.chunk", "choices": []}
                        final.update(created=int(time.time()), model=model, usage=usage)
                        self.wfile.write(f"data: {json.dumps(final)}\n\n".encode())
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    with standin.lock:
                        standin.streams_cut += 1
                    return
                with standin.lock:
                    standin.streams_finished += 1
                self.close_connection = True

            def do_GET(self):
                self._record(None)
                if self.path.rstrip("/").endswith("/models"):
                    self._send(
                        200,
                        {
                            "object": "list",
                            "data": [{"id": MODEL, "object": "model", "owned_by": "tests"}],
                        },
                    )
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"raw": raw.decode(errors="replace")}
                self._record(body)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                if standin.fail_with:
                    self._send(
                        standin.fail_with,
                        {
                            "error": {
                                "message": ERROR_MESSAGE,
                                "type": "server_error",
                                "code": "overloaded",
                            }
                        },
                    )
                    return
                text = last_user_text(body.get("messages"))
                if body.get("stream"):
                    self._stream(body, reply_pieces(text, standin.extra_pieces))
                    return
                content = f"<think>{THINKING}</think>{REPLY_PREFIX}{text}"
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-standin-{len(standin.requests)}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model") or MODEL,
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": content},
                                "finish_reason": "stop",
                                "logprobs": None,
                            }
                        ],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
                    },
                )

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def completions(self):
        with self.lock:
            return [
                r
                for r in self.requests
                if r["method"] == "POST" and "chat/completions" in r["path"]
            ]

    def reset(self):
        with self.lock:
            self.requests.clear()
            self.streams_started = self.streams_cut = self.streams_finished = 0
        self.fail_with = None
        self.piece_seconds = 0.15
        self.extra_pieces = 0
