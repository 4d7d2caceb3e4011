"""Install the shipped workflows into an n8n through its public API.

Used by `python manage.py n8n_setup`. For each workflow file (by default
`n8n/*.json`, not `n8n/tests/`):

1. find the workflow in n8n by its exact name; create it when missing, or
   update it in place when its content differs (same id, same webhook path,
   same webhook ids), and leave it alone when it is the same;
2. link its webhook node to the Header Auth credential (created from
   `N8N_WEBHOOK_SECRET` when n8n has none of that name) and every other
   credential it names to n8n's credential of the same name and type, when
   there is one;
3. activate it, refusing first when another active workflow already holds
   its webhook path;
4. probe its webhook: a dispatch body with `"probe": true`, which the shipped
   workflows answer at once with `{"probe": "ok", "workflow_id": PATH}`
   without calling back or running the model.

Comparisons are on normalized content (nodes by name, credentials by id, only
the settings the file names) so that a second run changes nothing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from . import signing
from .n8n_api import N8nApi, N8nApiError, workflow_body

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


class Setup:
    def __init__(
        self,
        api: N8nApi,
        files: list[Path],
        *,
        webhook_secret: str,
        dry_run: bool = False,
        probe: bool = True,
        model_url: str = "",
        model_api_key: str = "",
        out=print,
    ):
        self.api = api
        self.files = files
        self.secret = webhook_secret
        self.model_url = model_url
        self.model_api_key = model_api_key
        self.dry_run = dry_run
        self.probe_enabled = probe
        self.out = out
        self.report = Report()

    def say(self, line: str) -> None:
        self.report.lines.append(line)
        self.out(line)

    def run(self) -> Report:
        shipped = [ShippedWorkflow.load(path) for path in self.files]
        if not shipped:
            raise SetupError("workflow invalid", "no workflow files to install")
        names = [w.name for w in shipped]
        if len(set(names)) != len(names):
            raise SetupError("workflow invalid", "two files carry the same workflow name")
        try:
            existing = self.api.list_workflows()
        except N8nApiError as exc:
            raise api_failure(exc, "listing workflows") from None
        credential_ids = self.credentials(shipped)
        for workflow in shipped:
            outcome = Outcome(workflow.name, workflow.webhook_path)
            self.report.outcomes.append(outcome)
            try:
                self.install(workflow, existing, credential_ids, outcome)
            except SetupError as exc:
                if exc.cause in ("n8n unreachable", "bad API key (401)"):
                    raise
                outcome.error = exc
            self.say(outcome.line())
        return self.report

    # --- credentials -----------------------------------------------------------

    def credentials(self, shipped) -> dict[tuple[str, str], str]:
        """(type, name) → credential id in n8n; creates the webhook's Header Auth."""
        try:
            known = self.api.list_credentials()
        except N8nApiError as exc:
            raise api_failure(exc, "listing credentials") from None
        ids: dict[tuple[str, str], str] = {}
        for cred in sorted(known, key=lambda c: str(c.get("createdAt", ""))):
            ids.setdefault((cred.get("type"), cred.get("name")), str(cred.get("id")))
        wanted = {}
        for workflow in shipped:
            for ctype, name, on_webhook in workflow.credential_refs():
                wanted[(ctype, name)] = wanted.get((ctype, name), False) or on_webhook
        for (ctype, name), on_webhook in sorted(wanted.items()):
            if (ctype, name) in ids:
                self.say(f'credential "{name}" ({ctype}): exists (id {ids[(ctype, name)]})')
                continue
            if ctype == MODEL_CREDENTIAL_TYPE and self.model_url:
                ids[(ctype, name)] = self.create_model_credential(name)
                continue
            if not (on_webhook and ctype == HEADER_AUTH):
                continue  # reported on each workflow that needs it
            if not self.secret:
                raise SetupError(
                    "N8N_WEBHOOK_SECRET unset",
                    f'the webhooks require the Header Auth credential "{name}", made from '
                    "N8N_WEBHOOK_SECRET: set it (the same value the app sends)",
                )
            if self.dry_run:
                self.say(f'credential "{name}" ({ctype}): would create from N8N_WEBHOOK_SECRET')
                ids[(ctype, name)] = "(new)"
                continue
            try:
                created = self.api.create_credential(
                    name, ctype, {"name": "Authorization", "value": f"Bearer {self.secret}"}
                )
            except N8nApiError as exc:
                raise api_failure(exc, f'creating the credential "{name}"') from None
            ids[(ctype, name)] = str(created["id"])
            self.say(f'credential "{name}" ({ctype}): created from N8N_WEBHOOK_SECRET')
        return ids

    def create_model_credential(self, name) -> str:
        """The model workflow's OpenAI-compatible credential, from N8N_MODEL_BASE_URL."""
        if self.dry_run:
            self.say(
                f'credential "{name}" ({MODEL_CREDENTIAL_TYPE}): would create '
                "from N8N_MODEL_BASE_URL"
            )
            return "(new)"
        data = {"apiKey": self.model_api_key or "unused", "url": self.model_url}
        try:
            schema = self.api.credential_schema(MODEL_CREDENTIAL_TYPE)
            if "header" in (schema.get("properties") or {}):
                data["header"] = False  # no custom header (the schema requires saying so)
            created = self.api.create_credential(name, MODEL_CREDENTIAL_TYPE, data)
        except N8nApiError as exc:
            raise api_failure(exc, f'creating the credential "{name}"') from None
        self.say(f'credential "{name}" ({MODEL_CREDENTIAL_TYPE}): created from N8N_MODEL_BASE_URL')
        return str(created["id"])

    def linked(self, workflow: ShippedWorkflow, credential_ids, outcome) -> dict:
        """The workflow's content with n8n's credential ids in its nodes."""
        data = json.loads(json.dumps(workflow.data))
        for node in data["nodes"]:
            refs = node.get("credentials") or {}
            for ctype in list(refs):
                name = (refs[ctype] or {}).get("name")
                cred_id = credential_ids.get((ctype, name))
                if cred_id:
                    refs[ctype] = {"id": cred_id, "name": name}
                else:
                    # An id n8n does not know would be refused; without it the
                    # node waits for a credential to be picked in the editor.
                    del refs[ctype]
                    outcome.missing.append(
                        f'node "{node.get("name")}" needs the credential "{name}" ({ctype})'
                    )
            if "credentials" in node and not refs:
                del node["credentials"]
        return data

    # --- one workflow ------------------------------------------------------------

    def install(self, workflow: ShippedWorkflow, existing, credential_ids, outcome) -> None:
        same_name = [w for w in existing if w.get("name") == workflow.name]
        if len(same_name) > 1:
            ids = ", ".join(str(w.get("id")) for w in same_name)
            raise SetupError(
                "workflow ambiguous", f'several workflows are named "{workflow.name}" ({ids})'
            )
        current = same_name[0] if same_name else None
        path = workflow.webhook_path.strip("/")
        for other in existing:
            if other is current or not other.get("active"):
                continue
            if path in webhook_paths(other):
                raise SetupError(
                    "webhook path taken",
                    f'the active workflow "{other.get("name")}" (id {other.get("id")}) '
                    f"already answers at /webhook/{path}",
                )
        desired = self.linked(workflow, credential_ids, outcome)
        if current is None:
            outcome.changed = True
            if self.dry_run:
                outcome.steps += ["would create", "would activate"]
                return
            current = self.call(self.api.create_workflow, desired, doing="creating it")
            outcome.steps.append("created")
        else:
            outcome.workflow_id = str(current["id"])
            keep_identities(desired, current)
            settings_keys = sorted((desired.get("settings") or {}).keys())
            if normalized(desired, settings_keys) != normalized(current, settings_keys):
                outcome.changed = True
                if self.dry_run:
                    outcome.steps.append("would update")
                else:
                    current = self.call(
                        self.api.update_workflow, current["id"], desired, doing="updating it"
                    )
                    outcome.steps.append("updated")
            else:
                outcome.steps.append("unchanged")
        outcome.workflow_id = str(current["id"])
        if outcome.missing and not self.dry_run:
            hint = (
                "set N8N_MODEL_BASE_URL (and N8N_MODEL_API_KEY)"
                if any(MODEL_CREDENTIAL_TYPE in m for m in outcome.missing)
                else "create it"
            )
            raise SetupError(
                "credential missing",
                "; ".join(outcome.missing)
                + f": {hint} or create it in n8n's editor, then run n8n_setup again",
            )
        outcome.notes += outcome.missing
        if current.get("active"):
            outcome.steps.append("active")
        elif self.dry_run:
            outcome.changed = True
            outcome.steps.append("would activate")
        else:
            outcome.changed = True
            self.call(self.api.activate_workflow, current["id"], doing="activating it")
            outcome.steps.append("activated")
        if self.probe_enabled and not self.dry_run:
            self.probe(path)
            outcome.steps.append("probe ok")

    def call(self, method, *args, doing):
        try:
            return method(*args)
        except N8nApiError as exc:
            if exc.status in (None, 401, 403):
                raise api_failure(exc, doing) from None
            if "conflict" in exc.reason.lower() and "webhook" in exc.reason.lower():
                raise SetupError(
                    "webhook path taken", f"n8n refused {doing}: {exc.reason}"
                ) from None
            raise SetupError(
                "workflow invalid", f"n8n refused {doing} ({exc.status}): {exc.reason}"
            ) from None

    # --- the probe -----------------------------------------------------------------

    def probe(self, path: str) -> None:
        url = f"{self.api.base_url}/webhook/{path}"
        headers = {"Authorization": f"Bearer {self.secret}"} if self.secret else {}
        body = {"probe": True, "task_id": 0, "task_type": "probe", "workflow_id": path}
        deadline = time.monotonic() + PROBE_NOT_FOUND_GRACE_SECONDS
        while True:
            # Signed like a dispatch (new id and time on each try), so the probe
            # also checks the workflow's signature check.
            data, signed = signing.signed_body(body)
            try:
                response = requests.post(
                    url,
                    data=data,
                    headers={**headers, **signed},
                    timeout=PROBE_TIMEOUT,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                raise SetupError(
                    "n8n unreachable", f"the webhook {url} did not answer ({type(exc).__name__})"
                ) from None
            if response.status_code != 404 or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        excerpt = " ".join(response.text.split())[:200]
        if response.status_code == 401 and "signature refused" in response.text:
            raise SetupError(
                "webhook refused the signature (401)",
                f"the workflow's signature check said: {excerpt}; give n8n the same "
                "N8N_WEBHOOK_SIGNING_SECRET as this app (see the README, signed dispatches)",
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
            data = response.json()
        except ValueError:
            data = None
        if response.status_code != 200 or not isinstance(data, dict) or data.get("probe") != "ok":
            raise SetupError(
                "probe not answered",
                f"{url} answered {response.status_code} {excerpt!r}; the shipped workflows "
                'answer a body with "probe": true at once with {"probe": "ok"}',
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
