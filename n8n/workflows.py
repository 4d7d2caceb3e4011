"""The shipped n8n workflow files, and the parts of installing them that need no
n8n session: loading and comparing workflows, the outcome report, the probe.
`n8n/setup.py` (the `n8n_setup` command) drives an install with them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import chunks as n8n_stream
from . import signing, transport
from .api import N8nApiError, workflow_body

WEBHOOK_NODE = "n8n-nodes-base.webhook"
HEADER_AUTH = "httpHeaderAuth"
# chat-reply.json's model node: an OpenAI credential whose base URL may point at
# any OpenAI-compatible server; made from N8N_MODEL_BASE_URL when that is set.
MODEL_CREDENTIAL_TYPE = "openAiApi"
# Node fields that matter when deciding whether a workflow changed. `id` and
# `webhookId` are n8n's identities: an update keeps n8n's own.
COMPARED_NODE_FIELDS = (
    "name",
    "type",
    "typeVersion",
    "parameters",
    "credentials",
    "disabled",
    "onError",
    "retryOnFail",
    "maxTries",
    "waitBetweenTries",
    "executeOnce",
    "alwaysOutputData",
    "notes",
    "position",
)
PROBE_TIMEOUT = (3.0, 10.0)
# n8n registers a webhook as activation returns; a short grace covers a
# cluster whose main process registers it a moment later.
PROBE_NOT_FOUND_GRACE_SECONDS = 3.0


class SetupError(Exception):
    """A failure that stops the setup; `cause` is the short name of the kind."""

    def __init__(self, cause: str, detail: str):
        super().__init__(f"{cause}: {detail}")
        self.cause = cause
        self.detail = detail


def api_failure(exc: N8nApiError, doing: str) -> SetupError:
    if exc.status is None:
        return SetupError("n8n unreachable", exc.reason)
    if exc.status == 401:
        return SetupError("bad API key (401)", f"{exc.reason} while {doing}")
    if exc.status == 403:
        return SetupError(
            "API key lacks a scope (403)", f"{exc.reason} while {doing}: use an owner's key"
        )
    return SetupError(f"n8n refused ({exc.status})", f"{exc.reason} while {doing}")


@dataclass
class ShippedWorkflow:
    path: Path
    data: dict
    name: str
    webhook_path: str

    @property
    def tag_names(self) -> set[str]:
        """The tags the file names (`"tags": [{"name": "chat"}]`): n8n_setup
        gives the workflow each of them (the `chat` tag makes it an assistant)."""
        return {
            str(tag.get("name", "")).strip().lower()
            for tag in self.data.get("tags") or []
            if isinstance(tag, dict) and str(tag.get("name", "")).strip()
        }

    @classmethod
    def load(cls, path: Path) -> ShippedWorkflow:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SetupError("workflow invalid", f"{path}: not readable JSON ({exc})") from None
        if isinstance(data, list) and len(data) == 1:  # n8n's export of a single workflow
            data = data[0]
        if not isinstance(data, dict):
            raise SetupError("workflow invalid", f"{path}: not a workflow object")
        name = data.get("name")
        nodes = data.get("nodes")
        if not isinstance(name, str) or not name.strip():
            raise SetupError("workflow invalid", f"{path}: no name")
        if not isinstance(nodes, list) or not all(isinstance(n, dict) for n in nodes):
            raise SetupError("workflow invalid", f"{path}: nodes is not a list of nodes")
        if not isinstance(data.get("connections"), dict):
            raise SetupError("workflow invalid", f"{path}: connections is not an object")
        webhooks = [n for n in nodes if n.get("type") == WEBHOOK_NODE]
        if len(webhooks) != 1:
            raise SetupError("workflow invalid", f"{path}: needs exactly one Webhook node")
        webhook_path = (webhooks[0].get("parameters") or {}).get("path")
        if not isinstance(webhook_path, str) or not webhook_path:
            raise SetupError("workflow invalid", f"{path}: the Webhook node has no path")
        return cls(path, data, name, webhook_path)

    def credential_refs(self):
        """(credential type, name) of every credential the nodes name."""
        refs = []
        for node in self.data["nodes"]:
            for ctype, ref in (node.get("credentials") or {}).items():
                if isinstance(ref, dict) and ref.get("name"):
                    refs.append((ctype, ref["name"], node.get("type") == WEBHOOK_NODE))
        return refs


def default_workflow_files(base_dir: Path) -> list[Path]:
    return sorted((base_dir / "n8n").glob("*.json"))


def webhook_paths(workflow: dict) -> set[str]:
    return {
        str((node.get("parameters") or {}).get("path", "")).strip("/")
        for node in workflow.get("nodes") or []
        if node.get("type") == WEBHOOK_NODE
    }


def normalized(workflow: dict, settings_keys) -> dict:
    """What decides "changed": nodes by name without n8n's ids, credentials by id."""
    body = workflow_body(workflow)
    nodes = []
    for node in body["nodes"]:
        node = {k: node[k] for k in COMPARED_NODE_FIELDS if k in node}
        if "credentials" in node:
            node["credentials"] = {
                ctype: (ref or {}).get("id") for ctype, ref in node["credentials"].items()
            }
        nodes.append(node)
    settings = body.get("settings") or {}
    return {
        "name": body.get("name"),
        "nodes": sorted(nodes, key=lambda n: n.get("name", "")),
        "connections": body.get("connections") or {},
        "settings": {k: settings.get(k) for k in settings_keys},
    }


@dataclass
class Outcome:
    """One workflow's line."""

    name: str
    webhook_path: str
    workflow_id: str = ""
    steps: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    error: SetupError | None = None
    changed: bool = False

    def line(self) -> str:
        where = f" (id {self.workflow_id})" if self.workflow_id else ""
        text = f"{self.webhook_path}{where}: " + ", ".join(self.steps)
        if self.notes:
            text += "; " + "; ".join(self.notes)
        if self.error:
            text += (
                "; " if self.steps else ""
            ) + f"FAILED, {self.error.cause}: {self.error.detail}"
        return text


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error]

    @property
    def changed(self) -> bool:
        return any(o.changed for o in self.outcomes) or any(
            line.startswith("credential") and "created" in line for line in self.lines
        )


def probe_webhook(base_url: str, path: str, secret: str) -> None:
    """POST a signed probe to the webhook; SetupError unless it answers {"probe": "ok"}."""
    url = f"{base_url}/webhook/{path}"
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    body = {"probe": True, "task_id": 0, "task_type": "probe", "workflow_id": path}
    deadline = time.monotonic() + PROBE_NOT_FOUND_GRACE_SECONDS
    with transport.client(transport.timeout(*PROBE_TIMEOUT)) as client:
        while True:
            # Signed like a dispatch (new id and time on each try), so the probe
            # also checks the workflow's signature check.
            data, signed = signing.signed_body(body)
            try:
                response = client.post(url, content=data, headers={**headers, **signed})
            except transport.ERRORS as exc:
                raise SetupError(
                    "n8n unreachable", f"the webhook {url} did not answer ({type(exc).__name__})"
                ) from None
            if response.status_code != 404 or time.monotonic() > deadline:
                break
            time.sleep(0.25)
    excerpt = " ".join(response.text.split())[:200]
    # A streaming workflow answers 200 before any node runs: its answer is in the body.
    chunks = n8n_stream.parse_body(response.text) if response.status_code == 200 else None
    failed, description = n8n_stream.error_of(chunks or [])
    if failed and "signature refused" in (description or ""):
        raise SetupError(
            "webhook refused the signature (an error in its streamed answer)",
            f"the workflow's signature check said: {description[:200]}; give n8n the same "
            "N8N_WEBHOOK_SIGNING_SECRET as this app (see docs/N8N.md, signed dispatches)",
        )
    if response.status_code == 401 and "signature refused" in response.text:
        raise SetupError(
            "webhook refused the signature (401)",
            f"the workflow's signature check said: {excerpt}; give n8n the same "
            "N8N_WEBHOOK_SIGNING_SECRET as this app (see docs/N8N.md, signed dispatches)",
        )
    if response.status_code in (401, 403):
        raise SetupError(
            f"webhook refused the secret ({response.status_code})",
            "the Header Auth credential in n8n holds another value than "
            "`Bearer N8N_WEBHOOK_SECRET`: fix its value in n8n, or delete it and run again",
        )
    if response.status_code == 404:
        raise SetupError("webhook not registered (404)", f"{url}: {excerpt}")
    try:
        data = json.loads(n8n_stream.streamed_text(chunks) if chunks else response.text)
    except ValueError:
        data = None
    if response.status_code != 200 or not isinstance(data, dict) or data.get("probe") != "ok":
        raise SetupError(
            "probe not answered",
            f"{url} answered {response.status_code} {excerpt!r}; the shipped workflows "
            'answer a body with "probe": true at once with {"probe": "ok"} (streamed: '
            "one item holding that object)",
        )


def keep_identities(desired: dict, current: dict) -> None:
    """Keep n8n's node ids and webhook ids for nodes that keep their name."""
    by_name = {n.get("name"): n for n in current.get("nodes") or []}
    for node in desired["nodes"]:
        old = by_name.get(node.get("name"))
        if old is None:
            continue
        for key in ("id", "webhookId"):
            if old.get(key):
                node[key] = old[key]
