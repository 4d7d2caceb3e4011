"""A stand-in for n8n that behaves like the shipped chat workflow, with faults on demand.

- `POST /webhook/{workflow}` answers at once with `{"executionId": "<n>"}` (a
  plain answer; the shipped workflows stream that object as their first item,
  from their Accept node, and stream the reply too), then runs the
  "workflow" in a thread: a `processing` callback, a short pause standing in for
  the model, the reply written to the result node, a `completed` callback.
- Callbacks retry like n8n's *Retry On Fail*, with the tries, pause and
  on-error setting read from the shipped workflow file, so a callback that
  cannot get through ends the execution as n8n would (status `error` unless the
  node continues on error).
- `GET /api/v1/executions/{id}?includeData=true` (header `X-N8N-API-KEY`)
  answers in the shape of n8n 2.x's public API: `id`, `finished`, `mode`,
  `status` (`running`, `success`, `error`), `startedAt`, `stoppedAt`,
  `workflowId`, and `data.resultData.runData` keyed by node name, each run
  holding `data.main[0][i].json`.
- Faults: `mode` = `refuse` (the port is closed: connection refused), `503`,
  `hang` (requests are read and never answered while the mode lasts); and
  `app_unreachable` (callbacks fail before they leave, as when the app's
  address cannot be reached from n8n, while the app itself keeps running).

Every reply the stand-in produced is recorded, so the harness can check that
each one became a stored assistant message.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import requests

from tests.standins import Answer, N8nStandin

BASE_DIR = Path(__file__).resolve().parent.parent
WORKFLOW_FILE = BASE_DIR / "n8n" / "chat-reply-offline.json"
# The node whose output holds the `completed` body just before the callback
# node sends it: reconciliation reads the reply from its run data.
RESULT_NODE = "Result"
# A message holding this text makes the workflow fail on purpose (a model error).
FAIL_MARK = "[fail on purpose]"
HANG_LIMIT_SECONDS = 300
CALLBACK_TIMEOUT = (3.0, 15.0)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def retry_settings(node_name: str, path: Path = WORKFLOW_FILE) -> dict:
    """Tries, pause and on-error behaviour of one callback node of the shipped workflow."""
    settings = {"tries": 3, "wait": 3.0, "continue": False}
    try:
        nodes = json.loads(path.read_text())["nodes"]
    except (OSError, ValueError, KeyError):
        return settings
    for node in nodes:
        if node.get("name") == node_name:
            if node.get("retryOnFail"):
                settings["tries"] = max(1, min(int(node.get("maxTries", 3)), 5))
                settings["wait"] = min(float(node.get("waitBetweenTries", 1000)) / 1000, 5.0)
            else:
                settings["tries"] = 1
            settings["continue"] = node.get("onError") in (
                "continueRegularOutput",
                "continueErrorOutput",
            ) or bool(node.get("continueOnFail"))
    return settings


class CallbackFailed(Exception):
    pass


class Execution:
    def __init__(self, execution_id: str, body: dict):
        self.id = execution_id
        self.body = body
        self.task_id = body.get("task_id")
        self.status = "running"
        self.started = now_iso()
        self.stopped = None
        self.run_data: dict[str, list] = {}
        self.last_node = None
        self.error = None
        self.order = 0
        self.lock = threading.Lock()
        self.trail: list[tuple[float, str]] = []  # (wall time, what happened), for the report

    def node_ran(self, name: str, items=None, error: str | None = None, previous=None):
        with self.lock:
            self._node_ran(name, items, error, previous)

    def _node_ran(self, name, items, error, previous):
        self.trail.append((time.time(), f"{name}: {error}" if error else name))
        run = {
            "startTime": int(time.time() * 1000),
            "executionIndex": self.order,
            "executionTime": 1,
            "executionStatus": "error" if error else "success",
            "source": [{"previousNode": previous}] if previous else [],
        }
        if error:
            run["error"] = {"message": error, "name": "NodeApiError", "node": {"name": name}}
        else:
            run["data"] = {
                "main": [[{"json": item, "pairedItem": {"item": 0}} for item in items or [{}]]]
            }
        self.order += 1
        self.run_data.setdefault(name, []).append(run)
        self.last_node = name

    def finish(self, status: str, error: str | None = None):
        with self.lock:
            self._finish(status, error)

    def _finish(self, status, error):
        self.trail.append((time.time(), f"execution {status}"))
        self.status = status
        self.stopped = now_iso()
        if error:
            self.error = {
                "message": error,
                "name": "NodeApiError",
                "node": {"name": self.last_node},
            }

    def public(self, include_data: bool) -> dict:
        answer = {
            "id": self.id,
            "finished": self.status == "success",
            "mode": "webhook",
            "retryOf": None,
            "retrySuccessId": None,
            "status": self.status,
            "createdAt": self.started,
            "startedAt": self.started,
            "stoppedAt": self.stopped,
            "deletedAt": None,
            "workflowId": "chaosChatReply01",
            "waitTill": None,
            "storedAt": "db",
        }
        if include_data:
            result = {"runData": self.run_data, "lastNodeExecuted": self.last_node}
            if self.error:
                result["error"] = self.error
            answer["data"] = {
                "version": 1,
                "startData": {},
                "resultData": result,
                "executionData": {
                    "contextData": {},
                    "nodeExecutionStack": [],
                    "metadata": {},
                    "waitingExecution": {},
                    "waitingExecutionSource": {},
                },
            }
            answer["workflowData"] = {
                "id": "chaosChatReply01",
                "name": "chat-reply-offline (stand-in)",
                "active": True,
                "nodes": [],
                "connections": {},
                "settings": {},
            }
            answer["customData"] = {}
        return answer


class StandInN8n:
    def __init__(self, port: int, api_key: str, model_seconds=(0.3, 1.5)):
        self.port = port
        self.api_key = api_key
        self.model_seconds = model_seconds
        self.mode = "ok"
        self.app_unreachable = False
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.executions: dict[str, Execution] = {}
        # task id -> list of reply texts this stand-in produced for it
        self.produced: dict[int, list[str]] = {}
        self.counts = {
            "dispatches": 0,
            "dispatch_503": 0,
            "dispatch_hung": 0,
            "callbacks_sent": 0,
            "callbacks_failed_tries": 0,
            "callbacks_given_up": 0,
            "api_reads": 0,
            "failed_on_purpose": 0,
        }
        self.processing = retry_settings("Report processing")
        self.completed = retry_settings("Report completed")
        self.failed = retry_settings("Report failed")
        self.pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="n8n-run")
        self.http = requests.Session()
        self.web: N8nStandin | None = None
        self.stopping = False

    # --- serving (the shared asyncio stand-in of tests/standins.py) ----------------------

    def start(self):
        if self.web is None:
            self.web = N8nStandin(handler=functools.partial(answer, self), port=self.port)
        else:
            self.web.listen()

    def close_port(self):
        if self.web is not None:
            self.web.close_port()

    def listening(self) -> bool:
        return self.web is not None and self.web.server is not None

    def set_mode(self, mode: str):
        """`ok`, `refuse` (port closed), `503` or `hang`."""
        if mode == "refuse":
            self.mode = "refuse"
            self.close_port()
            return
        if not self.listening():
            self.start()
        self.mode = mode

    def stop(self):
        self.stopping = True
        self.mode = "ok"
        if self.web is not None:
            self.web.close()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def count(self, name: str, n: int = 1):
        with self.lock:
            self.counts[name] += n

    # --- the workflow -----------------------------------------------------------------

    def accept(self, body: dict) -> str:
        execution = Execution(str(next(self.ids)), body)
        with self.lock:
            self.executions[execution.id] = execution
            self.counts["dispatches"] += 1
        execution.node_ran("Webhook", [{"headers": {}, "params": {}, "query": {}, "body": body}])
        execution.node_ran("Accept", [{"executionId": execution.id}], previous="Webhook")
        self.pool.submit(self.run, execution)
        return execution.id

    def run(self, execution: Execution):
        body = execution.body
        message = str((body.get("input") or {}).get("message", ""))
        try:
            time.sleep(random.uniform(0.05, 0.2))
            self.callback(
                execution,
                "Report processing",
                self.processing,
                {
                    "status": "processing",
                    "current_step": "generating",
                    "execution_id": execution.id,
                },
            )
            time.sleep(random.uniform(*self.model_seconds))
            if FAIL_MARK in message:
                self.count("failed_on_purpose")
                execution.node_ran("Write reply", error="The model refused on purpose")
                self.callback(
                    execution,
                    "Report failed",
                    self.failed,
                    {
                        "status": "failed",
                        "execution_id": execution.id,
                        "error": {"message": "The model refused on purpose"},
                    },
                )
                execution.finish("success")
                return
            content = (
                f"Reply to task {execution.task_id} (execution {execution.id}): {message[:60]}"
            )
            completed = {
                "status": "completed",
                "execution_id": execution.id,
                "output": {"content": content, "thinking": ""},
            }
            execution.node_ran(RESULT_NODE, [completed], previous="Report processing")
            with self.lock:
                self.produced.setdefault(execution.task_id, []).append(content)
            self.callback(execution, "Report completed", self.completed, completed)
            execution.finish("success")
        except CallbackFailed as exc:
            execution.finish("error", str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug here must show, not hang the run
            execution.finish("crashed", f"stand-in error: {exc!r}")

    def callback(self, execution: Execution, node: str, retry: dict, payload: dict):
        """One HTTP Request node with Retry On Fail; raises CallbackFailed when it gives up
        and the node does not continue on error."""
        url = execution.body.get("callback_url")
        token = execution.body.get("callback_token")
        reason = "not tried"
        for attempt in range(retry["tries"]):
            if self.stopping:
                reason = "the harness stopped"
                break
            if attempt:
                time.sleep(retry["wait"])
            if self.app_unreachable:
                reason = "connect ECONNREFUSED (the app is unreachable from n8n)"
                self.count("callbacks_failed_tries")
                continue
            try:
                response = self.http.post(
                    url,
                    json=payload,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=CALLBACK_TIMEOUT,
                )
            except requests.RequestException as exc:
                reason = f"{type(exc).__name__}"
                self.count("callbacks_failed_tries")
                continue
            self.count("callbacks_sent")
            if response.ok:
                execution.node_ran(node, [response.json()], previous=execution.last_node)
                return
            reason = f"The service was not able to process your request ({response.status_code})"
            self.count("callbacks_failed_tries")
            if response.status_code < 500 and response.status_code not in (408, 429):
                # n8n retries these too, but the answer will not change: a 409 for a
                # task that already ended, a 401 for a bad token.
                break
        self.count("callbacks_given_up")
        execution.node_ran(node, error=reason, previous=execution.last_node)
        if not retry["continue"]:
            raise CallbackFailed(reason)


EXECUTION_PATH = re.compile(r"^/api/v1/executions/(\d+)$")
WEBHOOK_PATH = re.compile(r"^/webhook/[\w.-]+/?$")


# --- the answers -------------------------------------------------------------------------


async def fault(standin: StandInN8n, counter: str | None = None):
    """The current fault's answer: a 503, HUNG once a hang ends (the request is
    let go unanswered), or None when the request gets its regular answer."""
    if standin.mode == "503":
        if counter:
            standin.count(counter)
        return Answer(503, {"code": 503, "message": "Service Unavailable"})
    if standin.mode == "hang":
        if counter:
            standin.count("dispatch_hung")
        deadline = time.monotonic() + HANG_LIMIT_SECONDS
        while standin.mode == "hang" and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        return HUNG
    return None


HUNG = object()


async def answer(standin: StandInN8n, request):
    if request.method == "POST":
        return await answer_webhook(standin, request)
    if request.method == "GET":
        return await answer_api(standin, request)
    return Answer(501, {"message": "Unsupported method"})


async def answer_webhook(standin: StandInN8n, request):
    if not WEBHOOK_PATH.match(request.path):
        return Answer(404, {"message": "not found"})
    faulty = await fault(standin, "dispatch_503")
    if faulty is not None:
        return None if faulty is HUNG else faulty
    try:
        body = json.loads(request.body)
    except ValueError:
        return Answer(400, {"message": "not JSON"})
    return Answer(200, {"executionId": standin.accept(body)})


async def answer_api(standin: StandInN8n, request):
    match = EXECUTION_PATH.match(request.path)
    if not match:
        return Answer(404, {"message": "not found"})
    faulty = await fault(standin)
    if faulty is not None:
        return None if faulty is HUNG else faulty
    if request.headers.get("x-n8n-api-key") != standin.api_key:
        return Answer(401, {"message": "'X-N8N-API-KEY' header required"})
    standin.count("api_reads")
    execution = standin.executions.get(match.group(1))
    if execution is None:
        return Answer(404, {"message": "Not Found"})
    with execution.lock:  # a snapshot: the workflow thread may be adding a run
        snapshot = json.loads(json.dumps(execution.public("includeData=true" in request.query)))
    return Answer(200, snapshot)
