"""A slow stand-in for n8n: answers every webhook after a delay, records arrivals.

Run as `python -m bench.fake_n8n PORT DELAY_SECONDS ARRIVALS_FILE`. Each request's
arrival (time.time(), task id) is appended to the file as one JSON line.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    port, delay, path = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            arrived = time.time()
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            with lock, open(path, "a") as out:
                out.write(json.dumps({"t": arrived, "task_id": body.get("task_id")}) + "\n")
            time.sleep(delay)
            payload = json.dumps({"executionId": f"slow-{body.get('task_id')}"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
