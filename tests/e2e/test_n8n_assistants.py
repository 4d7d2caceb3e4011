"""Assistants found in a real n8n (each version of N8N_VERSIONS): every
active workflow tagged `chat` that starts with a Webhook node.

Workflows are made here through n8n's public API as a user makes them in the
editor (tags set with `PUT /workflows/{id}/tags`, the only way n8n takes them),
with names and webhook paths of their own, so other tests are not disturbed.
"""

import json
import uuid

import pytest

from chat.models import Assistant
from n8n.api import workflow_body
from tests import support
from tests.e2e.n8n_support import SECRET

pytestmark = [pytest.mark.n8n, pytest.mark.django_db]

OFFLINE = support.BASE_DIR / "n8n" / "chat-reply-offline.json"


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def lines(result):
    return [line for line in result.stdout.splitlines() if line.strip()]


def line_of(result, name):
    """The assistant's line (a later "made the default" line aside)."""
    [line, *_] = [x for x in lines(result) if x.startswith(f'assistant "{name}"')]
    return line


def tag_id(api, name):
    for tag in api.list_tags():
        if tag["name"] == name:
            return tag["id"]
    return api.create_tag(name)["id"]


def make_workflow(api, *, tagged, notes="", active=True):
    """A user's own agent workflow: the offline one under a new name and path."""
    name, path = unique("agent"), unique("agent")
    data = json.loads(OFFLINE.read_text())
    data["name"] = name
    for node in data["nodes"]:
        if node["type"] == "n8n-nodes-base.webhook":
            node["parameters"]["path"] = path
            node["notes"] = notes
            node.pop("credentials", None)
            node["parameters"]["authentication"] = "none"
    created = api.create_workflow(workflow_body(data))
    if tagged:
        api.set_workflow_tags(created["id"], [tag_id(api, "chat")])
    if active:
        api.activate_workflow(created["id"])
    return created["id"], name, path


def discover(n8n):
    result = n8n.n8n_setup("--assistants-only", secret=SECRET, files=[])
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_two_tagged_workflows_become_assistants_and_an_untagged_one_does_not(n8n):
    api = n8n.api()
    first_id, first, first_path = make_workflow(api, tagged=True, notes="Answers about tides.")
    second_id, second, second_path = make_workflow(api, tagged=True)
    _other_id, untagged, _ = make_workflow(api, tagged=False)
    _idle_id, inactive, _ = make_workflow(api, tagged=True, active=False)

    result = discover(n8n)
    assert line_of(result, first) == f'assistant "{first}" (/webhook/{first_path}): created'
    assert line_of(result, second).endswith("created")
    assert not any(untagged in line or inactive in line for line in lines(result))
    # The shipped chat workflows are assistants too (they carry the tag).
    assert Assistant.objects.filter(workflow_id="chat-reply", is_active=True).exists()
    assert lines(result)[-1] == "done: changes made"

    row = Assistant.objects.get(n8n_workflow_id=str(first_id))
    assert (row.name, row.workflow_id, row.description, row.is_active) == (
        first,
        first_path,
        "Answers about tides.",
        True,
    )
    assert row.streams is True  # the offline workflow's Webhook node streams
    assert Assistant.objects.get(n8n_workflow_id=str(second_id)).workflow_id == second_path
    assert Assistant.objects.filter(is_default=True).count() == 1

    again = discover(n8n)
    assert line_of(again, first).endswith(": unchanged")
    assert line_of(again, second).endswith(": unchanged")
    assert lines(again)[-1] == "done: nothing changed"


def test_an_untagged_workflow_deactivates_its_assistant_which_is_kept(n8n):
    api = n8n.api()
    workflow_id, name, _ = make_workflow(api, tagged=True)
    discover(n8n)
    assert Assistant.objects.get(n8n_workflow_id=str(workflow_id)).is_active

    api.set_workflow_tags(workflow_id, [])
    result = discover(n8n)
    assert line_of(result, name).endswith("deactivated (workflow not tagged chat or not active)")
    row = Assistant.objects.get(n8n_workflow_id=str(workflow_id))
    assert row.is_active is False
    assert line_of(discover(n8n), name).endswith(": inactive")

    # Tagged again: the same row comes back.
    api.set_workflow_tags(workflow_id, [tag_id(api, "chat")])
    assert line_of(discover(n8n), name).endswith("updated (is_active)")
    assert Assistant.objects.get(pk=row.pk).is_active


def test_a_deactivated_workflow_deactivates_its_assistant(n8n):
    api = n8n.api()
    workflow_id, name, _ = make_workflow(api, tagged=True)
    discover(n8n)
    api.deactivate_workflow(workflow_id)
    assert "deactivated" in line_of(discover(n8n), name)
    assert not Assistant.objects.get(n8n_workflow_id=str(workflow_id)).is_active


def test_assistants_only_installs_nothing(n8n):
    before = {w["id"]: w["updatedAt"] for w in n8n.api().list_workflows()}
    discover(n8n)
    after = {w["id"]: w["updatedAt"] for w in n8n.api().list_workflows()}
    assert after == before
