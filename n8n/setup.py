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
from pathlib import Path

from .api import N8nApi, N8nApiError
from .workflows import (
    HEADER_AUTH,
    MODEL_CREDENTIAL_TYPE,
    Outcome,
    Report,
    SetupError,
    ShippedWorkflow,
    api_failure,
    keep_identities,
    normalized,
    probe_webhook,
    webhook_paths,
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
        self._tag_ids: dict[str, str] | None = None

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
        self.tag(workflow, current, outcome)
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

    # --- tags --------------------------------------------------------------------

    def tag(self, workflow: ShippedWorkflow, current: dict, outcome) -> None:
        """Give the workflow the tags its file names (n8n takes them only
        through `PUT /workflows/{id}/tags`); the ones it has stay."""
        from .discovery import tag_names

        missing = sorted(workflow.tag_names - tag_names(current))
        if not missing:
            return
        outcome.changed = True
        if self.dry_run:
            outcome.steps.append("would tag " + ", ".join(missing))
            return
        kept = [str(t["id"]) for t in current.get("tags") or [] if isinstance(t, dict)]
        ids = kept + [self.tag_id(name) for name in missing]
        self.call(self.api.set_workflow_tags, current["id"], ids, doing="tagging it")
        outcome.steps.append("tagged " + ", ".join(missing))

    def tag_id(self, name: str) -> str:
        if self._tag_ids is None:
            known = self.call(self.api.list_tags, doing="listing tags")
            self._tag_ids = {str(t.get("name", "")).strip().lower(): str(t["id"]) for t in known}
        if name not in self._tag_ids:
            created = self.call(self.api.create_tag, name, doing=f'creating the tag "{name}"')
            self._tag_ids[name] = str(created["id"])
        return self._tag_ids[name]

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

    def probe(self, path: str) -> None:
        probe_webhook(self.api.base_url, path, self.secret)
