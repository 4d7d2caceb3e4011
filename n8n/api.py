"""A small client for n8n's public REST API (`/api/v1`, header `X-N8N-API-KEY`).

HTTP only: no database, no Django models, so `n8n_setup`, reconciliation and
Stop can all use it. Every request has a connect and a read time-out; every
failure is an `N8nApiError` carrying the HTTP status (None when n8n could not
be reached or answered something that is not JSON) and a plain reason.

    api = N8nApi.from_settings()          # N8N_BASE_URL, N8N_API_KEY
    for workflow in api.list_workflows():
        ...
    api.stop_execution("42")              # 404 on n8n releases without public stop

Endpoints used (n8n 2.8.4 and 2.41.x alike, except stop: 2.41 only):
`GET/POST /workflows`, `GET/PUT /workflows/{id}`, `POST /workflows/{id}/activate`
and `/deactivate`, `PUT /workflows/{id}/tags`, `GET/POST /tags`, `GET/POST /credentials`,
`GET /executions/{id}?includeData=true`, `POST /executions/{id}/stop`.
"""

from __future__ import annotations

import json as _json
from urllib.parse import quote

from . import transport
from .executions import execution_id

# What the public API accepts in a workflow body and in its settings: both
# schemas refuse unknown properties with a 400, so anything else is dropped.
WORKFLOW_FIELDS = ("name", "nodes", "connections", "settings", "staticData")
WORKFLOW_SETTINGS_FIELDS = (
    "saveExecutionProgress",
    "saveManualExecutions",
    "saveDataErrorExecution",
    "saveDataSuccessExecution",
    "executionTimeout",
    "errorWorkflow",
    "timezone",
    "executionOrder",
    "callerPolicy",
    "callerIds",
    "timeSavedPerExecution",
)
NODE_FIELDS = (
    "id",
    "name",
    "webhookId",
    "disabled",
    "notesInFlow",
    "notes",
    "type",
    "typeVersion",
    "executeOnce",
    "alwaysOutputData",
    "retryOnFail",
    "maxTries",
    "waitBetweenTries",
    "continueOnFail",
    "onError",
    "position",
    "parameters",
    "credentials",
)
# The API's largest page; and how many pages a listing follows at most.
PAGE_SIZE = 250
MAX_PAGES = 200
REASON_CHARS = 300


class N8nApiError(Exception):
    """A request to n8n's API that did not succeed.

    `status` is the HTTP status, or None when n8n was not reached (connection
    refused, DNS, time-out). `reason` is one plain sentence for an operator.
    """

    def __init__(self, status: int | None, reason: str):
        super().__init__(f"{reason} (HTTP {status})" if status else reason)
        self.status = status
        self.reason = reason

    @property
    def unreachable(self) -> bool:
        return self.status is None


class AnswerTooLarge(N8nApiError):
    """n8n's answer went past the bytes the caller would read."""

    def __init__(self, max_bytes: int):
        super().__init__(None, f"n8n's answer is larger than {max_bytes} bytes")
        self.max_bytes = max_bytes

    @property
    def unreachable(self) -> bool:
        return False


def workflow_body(workflow: dict) -> dict:
    """The part of a workflow (an exported file, or a GET answer) the API takes back."""
    body = {key: workflow[key] for key in WORKFLOW_FIELDS if key in workflow}
    settings = body.get("settings") or {}
    body["settings"] = {k: v for k, v in settings.items() if k in WORKFLOW_SETTINGS_FIELDS}
    body["nodes"] = [
        {k: v for k, v in node.items() if k in NODE_FIELDS} for node in body.get("nodes", [])
    ]
    if body.get("staticData") is None:
        body.pop("staticData", None)
    return body


class N8nApi:
    def __init__(self, base_url: str, api_key: str, *, timeout=(3.0, 30.0), client=None):
        """`timeout` is (connect, read) in seconds; `client` an httpx.Client to
        use instead of one of n8n.transport's."""
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.client = client or transport.client(transport.timeout(*timeout))

    @classmethod
    def from_settings(cls, **kwargs) -> N8nApi:
        from django.conf import settings

        return cls(settings.N8N_BASE_URL, settings.N8N_API_KEY, **kwargs)

    # --- transport ---------------------------------------------------------------

    def request(self, method: str, path: str, *, params=None, json=None):
        """One call to `/api/v1{path}`; returns the decoded JSON answer."""
        url = f"{self.base_url}/api/v1{path}"
        try:
            response = self.client.request(
                method,
                url,
                params=params,
                json=json,
                headers={"X-N8N-API-KEY": self.api_key, "Accept": "application/json"},
            )
        except transport.ERRORS as exc:
            raise unreachable(self.base_url, exc) from None
        if response.status_code >= 400:
            raise N8nApiError(response.status_code, _reason(response))
        try:
            return response.json()
        except ValueError:
            raise N8nApiError(
                response.status_code,
                f"n8n answered {method} {path} with something that is not JSON "
                f"(is {self.base_url} an n8n?)",
            ) from None

    def _list(self, path: str, params=None) -> list[dict]:
        """Follow `nextCursor` through every page of a listing."""
        params = {**(params or {}), "limit": PAGE_SIZE}
        items: list[dict] = []
        for _ in range(MAX_PAGES):
            page = self.request("GET", path, params=params)
            items.extend(page.get("data") or [])
            cursor = page.get("nextCursor")
            if not cursor:
                return items
            params["cursor"] = cursor
        raise N8nApiError(None, f"n8n listed more than {MAX_PAGES} pages of {path}")

    # --- workflows ---------------------------------------------------------------

    def list_workflows(self, **filters) -> list[dict]:
        """Every workflow (nodes included); filters: `active`, `name`, `tags`…"""
        params = {k: str(v).lower() if isinstance(v, bool) else v for k, v in filters.items()}
        return self._list("/workflows", params)

    def get_workflow(self, workflow_id: str) -> dict:
        return self.request("GET", f"/workflows/{workflow_id}")

    def create_workflow(self, workflow: dict) -> dict:
        return self.request("POST", "/workflows", json=workflow_body(workflow))

    def update_workflow(self, workflow_id: str, workflow: dict) -> dict:
        """Replace a workflow's content; n8n keeps its id and re-publishes it if active."""
        return self.request("PUT", f"/workflows/{workflow_id}", json=workflow_body(workflow))

    def activate_workflow(self, workflow_id: str) -> dict:
        """Activate ("publish" in n8n 2.x) the workflow's current version."""
        return self.request("POST", f"/workflows/{workflow_id}/activate")

    def deactivate_workflow(self, workflow_id: str) -> dict:
        return self.request("POST", f"/workflows/{workflow_id}/deactivate")

    # --- tags ----------------------------------------------------------------------

    def list_tags(self) -> list[dict]:
        return self._list("/tags")

    def create_tag(self, name: str) -> dict:
        return self.request("POST", "/tags", json={"name": name})

    def set_workflow_tags(self, workflow_id: str, tag_ids: list[str]) -> list[dict]:
        """Replace a workflow's tags (n8n takes them only through this call:
        a workflow body's `tags` is read-only)."""
        return self.request(
            "PUT", f"/workflows/{workflow_id}/tags", json=[{"id": str(i)} for i in tag_ids]
        )

    # --- credentials ---------------------------------------------------------------

    def list_credentials(self) -> list[dict]:
        """Every credential's id, name and type (n8n never sends the secrets back)."""
        return self._list("/credentials")

    def create_credential(self, name: str, credential_type: str, data: dict) -> dict:
        return self.request(
            "POST", "/credentials", json={"name": name, "type": credential_type, "data": data}
        )

    def credential_schema(self, credential_type: str) -> dict:
        """The JSON schema n8n checks a credential's `data` against."""
        return self.request("GET", f"/credentials/schema/{credential_type}")

    # --- executions ----------------------------------------------------------------

    def get_execution(
        self, execution_id: str, *, include_data: bool = True, max_bytes=None, parse=None
    ):
        """One execution: `status` (success, error, running, canceled…), and with
        `include_data` its run data (node outputs, errors).

        With `max_bytes` the answer is read as it arrives and refused
        (AnswerTooLarge) past that many bytes; `parse(raw bytes)` then decodes
        it instead of `json.loads`, and what it raises is the caller's."""
        params = {"includeData": "true" if include_data else "false"}
        path = f"/executions/{_path_id(execution_id)}"
        if max_bytes is None:
            return self.request("GET", path, params=params)
        raw = self.read_bounded("GET", path, max_bytes, params=params)
        return parse(raw) if parse is not None else _json.loads(raw)

    def read_bounded(self, method: str, path: str, max_bytes: int, *, params=None) -> bytes:
        """The raw answer of one call, at most `max_bytes` of it (else AnswerTooLarge)."""
        url = f"{self.base_url}/api/v1{path}"
        headers = {"X-N8N-API-KEY": self.api_key, "Accept": "application/json"}
        try:
            with self.client.stream(method, url, params=params, headers=headers) as response:
                if response.status_code >= 400:
                    response.read()
                    raise N8nApiError(response.status_code, _reason(response))
                raw = bytearray()
                for part in response.iter_bytes():
                    raw += part
                    if len(raw) > max_bytes:
                        raise AnswerTooLarge(max_bytes)
        except transport.ERRORS as exc:
            raise unreachable(self.base_url, exc) from None
        return bytes(raw)

    def stop_execution(self, execution_id: str) -> dict:
        """Stop a running execution: 200 `{"status": "canceled"}`; 409 when it has
        already ended; 404 for an unknown id, and on n8n releases (2.8.x) whose
        public API has no stop."""
        return self.request("POST", f"/executions/{_path_id(execution_id)}/stop")


def unreachable(base_url, exc) -> N8nApiError:
    """A request to n8n that got no answer (an httpx error), for an operator."""
    if transport.timed_out(exc):
        return N8nApiError(None, f"n8n at {base_url} did not answer in time")
    return N8nApiError(None, f"n8n is unreachable at {base_url} ({type(exc).__name__})")


def _path_id(value) -> str:
    """An execution id as a path segment: only a valid one (n8n/executions.py),
    quoted all the same; anything else is refused before a request is made."""
    valid = execution_id(value)
    if not valid:
        raise N8nApiError(None, f"not an execution id: {str(value)[:80]!r}")
    return quote(valid, safe="")


def _reason(response) -> str:
    """n8n's own message for a refused request, in one short line."""
    try:
        data = response.json()
    except ValueError:
        data = None
    message = ""
    if isinstance(data, dict):
        message = str(data.get("message") or data.get("error") or "")
    if not message:
        message = (response.text or "").strip()
    message = " ".join(message.split())[:REASON_CHARS]
    if response.status_code == 401:
        return f"n8n refused the API key (check N8N_API_KEY){': ' + message if message else ''}"
    return message or f"n8n answered HTTP {response.status_code}"
