"""A stand-in OpenAI-compatible model server on 127.0.0.1 for the n8n tests.

No model can run on the CI machine, so n8n's "OpenAI-compatible chat model"
node talks to this small server in the test process instead. It answers
POST /v1/chat/completions with a non-streaming chat completion whose content
carries a <think> part and echoes the last user message, answers
GET /v1/models, and records every request so tests can look at the prompt.
Setting `fail_with` to an HTTP status makes it answer that status with an
OpenAI-style error body instead.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "standin-model"
THINKING = "stand-in reasoning"
REPLY_PREFIX = "Hello from the stand-in model, you said: "
ERROR_MESSAGE = "the stand-in model is overloaded"


def last_user_text(messages):
    for message in reversed(messages or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # content parts
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


class ModelStandin:
    def __init__(self):
        self.requests = []
        self.fail_with = None
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
        self.fail_with = None
