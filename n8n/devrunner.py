"""The development workflow runner: plays n8n when N8N_BASE_URL is unset.

It takes the exact dispatch body n8n would get, answers like n8n's webhook
(2xx with an execution id), and then, from a background thread and over real
HTTP to the task's callback_url with its token, does what a workflow does:
`processing` with a step and a message (the files it received listed in the
reply), a short pause
(DEV_RUNNER_STEP_SECONDS), the reply word by word as `delta`s
(DEV_RUNNER_WORD_SECONDS apart), then `completed` with the whole text. So `make run` shows the whole
path working with nothing else installed. Task types other than chat get an
output object echoing their input.
"""

import itertools
import logging
import re
import threading
import time

from django.conf import settings

from . import transport

logger = logging.getLogger(__name__)

CALLBACK_TRIES = 4
CALLBACK_PAUSE_SECONDS = 0.5
CALLBACK_TIMEOUT = (3.0, 10.0)  # connect, read
_counter = itertools.count(1)


def accept(body, headers=None):
    """n8n's webhook answer: (HTTP status, JSON). Starts the run in a thread."""
    missing = [key for key in ("task_id", "callback_url", "callback_token") if not body.get(key)]
    if missing:
        return 400, {"message": f"missing {', '.join(missing)}"}
    execution_id = f"dev-{next(_counter)}"
    thread = threading.Thread(
        target=run,
        args=(dict(body), execution_id, settings.DEV_RUNNER_STEP_SECONDS),
        name=f"devrunner-{body['task_id']}",
        daemon=True,
    )
    thread.start()
    return 200, {"message": "Workflow was started", "executionId": execution_id}


def reply_for(body, execution_id):
    data = body.get("input") or {}
    message = data.get("message") if isinstance(data, dict) else None
    if not isinstance(message, str):
        return {"echo": data, "runner": "development", "execution_id": execution_id}
    history = data.get("history") or []
    wrote = f"You wrote:\n\n> {message}" if message.strip() else "You sent no text."
    return {
        "content": (
            "This reply comes from the **development workflow runner**, not from an "
            "assistant model: N8N_BASE_URL is not set, so no n8n workflow ran.\n\n"
            f"{_received(data)}"
            f"{wrote}{_received_files(data.get('attachments'))}"
        ),
        "thinking": (
            f"Development runner, execution {execution_id}: echoing the message; "
            f"the conversation had {len(history)} earlier message(s)."
        ),
    }


def _received_files(files) -> str:
    """What the runner received of the message's files (names and sizes), as
    a workflow would before downloading them through their `url`s."""
    if not isinstance(files, list) or not files:
        return ""
    lines = [
        f"- `{entry.get('name')}`: {entry.get('content_type')}, {entry.get('size')} bytes"
        + (", with a download link" if entry.get("url") else "")
        for entry in files
        if isinstance(entry, dict)
    ]
    return f"\n\nIt received {len(lines)} file(s):\n\n" + "\n".join(lines)


INSTRUCTION_WORDS = 12


def _received(data) -> str:
    """What reached the runner besides the message: the assistant's name and
    the first words of the instructions (so `make run` shows both paths)."""
    assistant = data.get("assistant")
    name = assistant.get("name") if isinstance(assistant, dict) else None
    lines = [f"Assistant: {name}." if name else "Assistant: none configured."]
    instructions = data.get("instructions")
    words = instructions.split() if isinstance(instructions, str) else []
    if words:
        start = " ".join(words[:INSTRUCTION_WORDS])
        more = "…" if len(words) > INSTRUCTION_WORDS else ""
        lines.append(f"Instructions received: “{start}{more}”")
    else:
        lines.append("Instructions received: none.")
    return "\n".join(f"- {line}" for line in lines) + "\n\n"


def post_callback(url, token, payload, client=None) -> int | None:
    """POST one callback, retrying connection errors a few times (like n8n's
    HTTP Request node with retry on failure). Returns the HTTP status."""
    if client is None:
        with transport.client(transport.timeout(*CALLBACK_TIMEOUT)) as client:
            return post_callback(url, token, payload, client)
    headers = {"Authorization": f"Bearer {token}"}
    for attempt in range(1, CALLBACK_TRIES + 1):
        try:
            return client.post(url, json=payload, headers=headers).status_code
        except transport.ERRORS as exc:
            logger.warning("development runner: callback to %s failed (%s)", url, exc)
            if attempt < CALLBACK_TRIES:
                time.sleep(CALLBACK_PAUSE_SECONDS * attempt)
    return None


def pieces(text) -> list[str]:
    """The reply cut into words, each with the space after it (they join back
    into exactly the text)."""
    return re.findall(r"\s*\S+\s*|\s+", text)


def run(body, execution_id, pause, word_pause=None):
    """What a streaming chat workflow does: say it started, stream the reply
    word by word (`processing` callbacks with `delta`), then send it whole
    (`completed`). A 409 answer means the task was stopped: the run ends."""
    if word_pause is None:
        word_pause = settings.DEV_RUNNER_WORD_SECONDS
    url, token = body["callback_url"], body["callback_token"]
    with transport.client(transport.timeout(*CALLBACK_TIMEOUT)) as client:

        def call_back(payload):
            return post_callback(url, token, payload, client)

        call_back(
            {
                "status": "processing",
                "current_step": "generating",
                "status_message": "The development runner is writing a reply…",
                "execution_id": execution_id,
            },
        )
        time.sleep(pause)
        output = reply_for(body, execution_id)
        if settings.DEV_RUNNER_STREAM and isinstance(output.get("content"), str):
            for piece in pieces(output["content"]):
                if call_back({"status": "processing", "delta": piece}) == 409:
                    return  # stopped: what was written stays
                time.sleep(word_pause)
        call_back(
            {
                "status": "completed",
                "current_step": "done",
                "execution_id": execution_id,
                "output": output,
            },
        )
