"""A fresh n8n's first API key: owner setup, login, key (development and tests).

n8n creates API keys only for a signed-in user, so a brand-new n8n needs its
owner set up first. `scripts/n8n-dev.sh` and the real-n8n tests use this; in
production an operator creates the key in n8n's settings.
"""

import time

from . import transport
from .api import N8nApiError, _reason, unreachable

# What n8n_setup, reconciliation and Stop need; the key gets those of them the
# n8n release offers.
API_KEY_SCOPES = (
    "workflow:create",
    "workflow:read",
    "workflow:update",
    "workflow:list",
    "workflow:activate",
    "workflow:deactivate",
    "tag:create",
    "tag:list",
    "tag:read",
    "workflowTags:update",
    "workflowTags:list",
    "credential:create",
    "credential:list",
    "execution:read",
    "execution:list",
    "execution:stop",
)


def bootstrap_api_key(
    base_url, email, password, *, label="chatproject", timeout=(3.0, 30.0), ready_timeout=120.0
):
    """Set up a fresh n8n's owner (or log in as it) and create an API key.

    For development (scripts/n8n-dev.sh) and the tests: this goes through the
    editor's internal REST endpoints (`/rest/owner/setup`, `/rest/login`,
    `/rest/api-keys`), the steps a person takes in the editor; in production a
    person creates the key under Settings → n8n API. Returns the raw key (n8n
    shows it only once).
    """
    base_url = base_url.rstrip("/")
    # n8n binds its login cookie to this header; any stable value does.
    with transport.client(
        transport.timeout(*timeout), headers={"browser-id": "chatproject-bootstrap"}
    ) as rest:
        return _create_key(rest, base_url, email, password, label, ready_timeout)


def _create_key(rest, base_url, email, password, label, ready_timeout):
    def call(method, path, **kwargs):
        try:
            response = rest.request(method, f"{base_url}/rest{path}", **kwargs)
        except transport.ERRORS as exc:
            raise unreachable(base_url, exc) from None
        if response.status_code >= 400:
            raise N8nApiError(response.status_code, _reason(response))
        return response.json().get("data")

    owner = {"email": email, "firstName": "chatproject", "lastName": "owner", "password": password}
    # A starting n8n answers 503 "Database is not ready!" for a while, even
    # after it logs that the editor is accessible (seen on a loaded machine).
    deadline = time.monotonic() + ready_timeout
    while True:
        try:
            call("POST", "/owner/setup", json=owner)
            break
        except N8nApiError as exc:
            if exc.status == 400:  # the owner exists already; log in as it
                break
            if exc.status not in (None, 503) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    call("POST", "/login", json={"emailOrLdapLoginId": email, "password": password})
    offered = set(call("GET", "/api-keys/scopes") or [])
    created = call(
        "POST",
        "/api-keys",
        json={"label": label, "scopes": sorted(offered & set(API_KEY_SCOPES)), "expiresAt": None},
    )
    return created["rawApiKey"]
