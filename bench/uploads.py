"""The upload figure of `make bench` (and `make bench-upload` alone): a 10 MiB
file sent with a message to one Daphne process, as a browser sends it
(multipart, the send form's URL).

For each round: the time from the first byte sent to the answer, and the
server process's peak resident memory during the request above what it held
just before (sampled every 2 ms from /proc), as a multiple of the file's size
(goal: under 2). The trivial GET of the same process is the yardstick for
the time.
"""

import os
import statistics
import tempfile
import threading
import time

FILE_BYTES = 10 * 1024 * 1024
ROUNDS = 5


def _pdf(size):
    head = b"%PDF-1.4\n"
    tail = b"\n%%EOF\n"
    return head + os.urandom(size - len(head) - len(tail)) + tail


class PeakRss:
    """The highest VmRSS of a process while it runs, sampled in a thread."""

    def __init__(self, pid, rss_kib):
        self.pid, self.rss_kib = pid, rss_kib
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss_kib(self.pid) or 0)
            time.sleep(0.002)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss_kib(self.pid) or 0)


def run(server, user, rss_kib, trivial_get_latency, session_cookie, make_conversation):
    """The figures, as a dict: `server(**env)` starts a Daphne process."""
    import requests

    data = _pdf(FILE_BYTES)
    times, extra_mib = [], []
    media = tempfile.mkdtemp(prefix="bench-media-")
    with server(MEDIA_ROOT=media, TASK_TIMEOUT_SECONDS="600") as srv:
        trivial = trivial_get_latency(srv.base_url, n=200)
        cookie = session_cookie(user)
        session = requests.Session()
        name, value = cookie.split("=", 1)
        session.cookies.set(name, value)
        for round_ in range(ROUNDS + 1):
            # A fresh conversation each round: one reply at a time per conversation.
            conversation = make_conversation(user)
            page = f"{srv.base_url}/chat/{conversation.pk}/"
            session.get(page).raise_for_status()
            token = session.cookies["csrftoken"]
            time.sleep(0.2)  # let the previous round's reply settle
            before = rss_kib(srv.process.pid)
            with PeakRss(srv.process.pid, rss_kib) as peak:
                started = time.perf_counter()
                response = session.post(
                    f"{page}messages/",
                    data={"content": "A large file", "csrfmiddlewaretoken": token},
                    files={"files": ("large.pdf", data, "application/pdf")},
                    headers={"Accept": "application/json", "X-CSRFToken": token},
                )
                elapsed = time.perf_counter() - started
            if response.status_code != 201:
                raise RuntimeError(f"upload answered {response.status_code}: {response.text[:200]}")
            if round_ == 0:
                continue  # warm-up: first imports, first storage folder
            times.append(elapsed * 1000)
            extra_mib.append(max(peak.peak - before, 0) / 1024)
    size_mib = FILE_BYTES / 1024 / 1024
    median_ms = statistics.median(times)
    trivial_ms = statistics.median(trivial) * 1000  # its samples are seconds
    return {
        "file_mib": size_mib,
        "rounds": ROUNDS,
        "upload_ms_p50": round(median_ms, 1),
        "upload_ms_max": round(max(times), 1),
        "upload_vs_trivial_get": round(median_ms / trivial_ms, 1) if trivial_ms else None,
        "peak_extra_mib_p50": round(statistics.median(extra_mib), 1),
        "peak_extra_mib_max": round(max(extra_mib), 1),
        "peak_extra_vs_file": round(max(extra_mib) / size_mib, 2),
        "goal_peak_extra_under_2x_file": max(extra_mib) < 2 * size_mib,
    }


def main():
    import json

    from bench import run as bench

    bench.ensure_services()
    bench.fresh_database()
    bench.setup_django()
    user = bench.make_user("uploader")
    results = run(
        bench.server,
        user,
        bench.rss_kib,
        bench.trivial_get_latency,
        bench.session_cookie,
        lambda owner: bench.make_conversation(owner),
    )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
