"""A slow stand-in for n8n: answers every webhook after a delay, records arrivals.

Run as `python -m bench.fake_n8n PORT DELAY_SECONDS ARRIVALS_FILE`. Each request's
arrival (time.time(), task id) is appended to the file as one JSON line. The
server is the shared stand-in of tests/standins.py; each answer closes its
connection.
"""

import asyncio
import json
import sys
import time

from tests.standins import Answer, N8nStandin


def slow_answers(delay, path):
    async def answer(request):
        if request.method != "POST":
            return Answer(501, {"message": "Unsupported method"})
        arrived = time.time()
        body = request.json() or {}
        with open(path, "a") as out:
            out.write(json.dumps({"t": arrived, "task_id": body.get("task_id")}) + "\n")
        await asyncio.sleep(delay)
        return Answer(200, {"executionId": f"slow-{body.get('task_id')}"})

    return answer


def main():
    port, delay, path = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    N8nStandin(handler=slow_answers(delay, path), port=port, keep_alive=False).serve_forever()


if __name__ == "__main__":
    main()
