"""`manage.py n8n_setup` against a real n8n (each version of N8N_VERSIONS).

The session's n8n (tests/e2e/n8n_support.py) starts empty and is set up by
n8n_setup itself; these tests look at that first run, run it again, and run it
into each failure it must name. Workflows a test adds get names and webhook
paths of their own, so the shipped ones stay as the other tests need them.
"""

import json
import uuid

import pytest
import requests

from n8n import chunks as n8n_stream
from n8n.workflows import SetupError, ShippedWorkflow
from tests import support
from tests.e2e.n8n_support import SECRET, WORKFLOW_FILES

pytestmark = pytest.mark.n8n

SHIPPED_PATHS = {
    "chat-reply",
    "chat-reply-offline",
    "chat-reply-fails",
    "chat-feedback",
    "chat-files",
}
# The shipped chat workflows carry n8n's `chat` tag (they are assistants); the
# test-only ones and the feedback workflow do not.
TAGGED_PATHS = {"chat-reply", "chat-reply-offline"}
OFFLINE = support.BASE_DIR / "n8n" / "chat-reply-offline.json"


def lines(result):
    return [line for line in result.stdout.splitlines() if line.strip()]


def line_for(result, path):
    [line] = [x for x in lines(result) if x.startswith((f"{path} ", f"{path}:"))]
    return line


def workflow_file(tmp_path, *, name, path, change=None):
    """A copy of the offline workflow under another name and webhook path."""
    data = json.loads(OFFLINE.read_text())
    data["name"] = name
    for node in data["nodes"]:
        if node["type"] == "n8n-nodes-base.webhook":
            node["parameters"]["path"] = path
    for node in data["nodes"]:
        if node["name"] == "Answer probe":
            node["parameters"]["responseBody"] = node["parameters"]["responseBody"].replace(
                "chat-reply-offline", path
            )
    if change:
        change(data)
    target = tmp_path / f"{path}.json"
    target.write_text(json.dumps(data))
    return target


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def by_name(api):
    return {w["name"]: w for w in api.list_workflows()}


def test_the_first_run_takes_an_empty_n8n_to_active_probed_workflows(n8n):
    result = n8n.first_setup
    assert result.returncode == 0, result.stderr
    assert any(
        "chatproject dispatch (Header Auth)" in line and "created from N8N_WEBHOOK_SECRET" in line
        for line in lines(result)
    )
    for path in SHIPPED_PATHS:
        tagged = "tagged chat, " if path in TAGGED_PATHS else ""
        assert line_for(result, path).endswith(f"created, {tagged}activated, probe ok")
    assert lines(result)[-1] == "done: changes made"

    workflows = by_name(n8n.api())
    credentials = {c["name"]: c["id"] for c in n8n.api().list_credentials()}
    for path in WORKFLOW_FILES:
        shipped = ShippedWorkflow.load(path)
        workflow = workflows[shipped.name]
        assert workflow["active"] is True
        [webhook] = [n for n in workflow["nodes"] if n["type"] == "n8n-nodes-base.webhook"]
        assert webhook["parameters"]["path"] == shipped.webhook_path
        tags = {t["name"] for t in workflow.get("tags") or []}
        assert tags == ({"chat"} if shipped.webhook_path in TAGGED_PATHS else set())
        assert (
            webhook["credentials"]["httpHeaderAuth"]["id"]
            == (credentials["chatproject dispatch (Header Auth)"])
        )


def test_a_second_run_changes_nothing(n8n):
    before = by_name(n8n.api())
    result = n8n.n8n_setup(secret=SECRET)
    assert result.returncode == 0, result.stdout + result.stderr
    for path in SHIPPED_PATHS:
        assert line_for(result, path).endswith("unchanged, active, probe ok")
    assert lines(result)[-1] == "done: nothing changed"
    after = by_name(n8n.api())
    assert after.keys() == before.keys()
    for name, workflow in before.items():
        assert after[name]["updatedAt"] == workflow["updatedAt"]
        assert after[name].get("versionId") == workflow.get("versionId")


def test_the_probe_is_answered_at_once_without_a_callback(n8n):
    response = requests.post(
        f"{n8n.base_url}/webhook/chat-reply",
        json={"probe": True, "callback_url": "http://127.0.0.1:9/never"},
        headers={"Authorization": f"Bearer {SECRET}"},
        timeout=10,
    )
    # The workflow streams (Webhook node in Streaming mode): one item holds the answer.
    assert response.status_code == 200
    chunks = n8n_stream.parse_body(response.text)
    assert [kind for kind, _ in chunks] == ["begin", "item", "end"]
    assert json.loads(n8n_stream.streamed_text(chunks)) == {
        "probe": "ok",
        "workflow_id": "chat-reply",
    }


def test_a_changed_file_updates_the_workflow_in_place_and_dry_run_only_says_so(n8n, tmp_path):
    name, path = unique("setup-update"), unique("setup-update")
    first = n8n.n8n_setup(secret=SECRET, files=[workflow_file(tmp_path, name=name, path=path)])
    assert first.returncode == 0, first.stdout + first.stderr
    created = by_name(n8n.api())[name]

    def new_text(data):
        [code] = [n for n in data["nodes"] if n["name"] == "Write reply"]
        code["parameters"]["jsCode"] = code["parameters"]["jsCode"].replace(
            "Offline reply from n8n", "Updated offline reply"
        )

    changed = workflow_file(tmp_path, name=name, path=path, change=new_text)
    dry = n8n.n8n_setup("--dry-run", secret=SECRET, files=[changed])
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert line_for(dry, path).endswith("would update, active")
    assert by_name(n8n.api())[name]["updatedAt"] == created["updatedAt"]

    real = n8n.n8n_setup(secret=SECRET, files=[changed])
    assert real.returncode == 0, real.stdout + real.stderr
    assert line_for(real, path).endswith("updated, active, probe ok")
    updated = n8n.api().get_workflow(created["id"])
    [code] = [n for n in updated["nodes"] if n["name"] == "Write reply"]
    assert "Updated offline reply" in code["parameters"]["jsCode"]
    [webhook] = [n for n in updated["nodes"] if n["type"] == "n8n-nodes-base.webhook"]
    [old_webhook] = [n for n in created["nodes"] if n["type"] == "n8n-nodes-base.webhook"]
    assert webhook["parameters"]["path"] == path
    assert webhook["webhookId"] == old_webhook["webhookId"]
    assert updated["active"] is True


def test_a_wrong_api_key_exits_non_zero_naming_401(n8n):
    result = n8n.n8n_setup(secret=SECRET, api_key="not-a-key", own_process=True)
    assert result.returncode != 0
    assert "bad API key (401)" in result.stderr
    assert "N8N_API_KEY" in result.stderr


def test_an_unreachable_n8n_exits_non_zero_saying_so(n8n):
    nowhere = f"http://127.0.0.1:{support.free_port()}"
    result = n8n.n8n_setup(secret=SECRET, base_url=nowhere)
    assert result.returncode != 0
    assert f"n8n unreachable: n8n is unreachable at {nowhere}" in result.stderr


def test_a_workflow_n8n_cannot_activate_is_reported_invalid(n8n, tmp_path):
    path = unique("setup-invalid")

    def unknown_node(data):
        [code] = [n for n in data["nodes"] if n["name"] == "Write reply"]
        code["type"] = "n8n-nodes-base.doesNotExist"

    broken = workflow_file(tmp_path, name=path, path=path, change=unknown_node)
    result = n8n.n8n_setup(secret=SECRET, files=[broken])
    assert result.returncode != 0
    assert "workflow invalid" in line_for(result, path)
    assert "doesNotExist" in line_for(result, path)
    assert f"failed ({path}): workflow invalid" in result.stderr
    assert by_name(n8n.api())[path]["active"] is False


def test_a_webhook_path_held_by_another_workflow_is_refused_and_nothing_is_created(n8n, tmp_path):
    name = unique("setup-thief")
    thief = workflow_file(tmp_path, name=name, path="chat-reply-offline")
    result = n8n.n8n_setup(secret=SECRET, files=[thief])
    assert result.returncode != 0
    line = line_for(result, "chat-reply-offline")
    assert "webhook path taken" in line
    assert '"chat-reply-offline (chatproject, no model)"' in line
    assert name not in by_name(n8n.api())


def test_a_secret_that_differs_from_n8ns_credential_fails_the_probe_with_403(n8n):
    result = n8n.n8n_setup(secret="not-the-secret", files=[OFFLINE])
    assert result.returncode != 0
    assert "webhook refused the secret (403)" in line_for(result, "chat-reply-offline")


def test_a_missing_model_credential_is_named_and_the_workflow_left_inactive(n8n, tmp_path):
    data = json.loads((support.BASE_DIR / "n8n" / "chat-reply.json").read_text())
    name = path = unique("setup-model")
    data["name"] = name
    for node in data["nodes"]:
        if node["type"] == "n8n-nodes-base.webhook":
            node["parameters"]["path"] = path
        if "openAiApi" in (node.get("credentials") or {}):
            node["credentials"]["openAiApi"]["name"] = "a model credential nobody made"
    target = tmp_path / "model.json"
    target.write_text(json.dumps(data))
    result = n8n.n8n_setup(secret=SECRET, files=[target])
    assert result.returncode != 0
    line = line_for(result, path)
    assert "credential missing" in line
    assert '"a model credential nobody made" (openAiApi)' in line
    assert "N8N_MODEL_BASE_URL" in line
    assert by_name(n8n.api())[name]["active"] is False


def test_a_file_that_is_not_a_workflow_is_refused_before_n8n_is_asked(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x", "nodes": "not a list", "connections": {}}')
    with pytest.raises(SetupError) as caught:
        ShippedWorkflow.load(bad)
    assert caught.value.cause == "workflow invalid"
    assert "nodes" in caught.value.detail


def test_the_shipped_workflow_files_each_have_one_webhook_and_a_probe_branch():
    for path in WORKFLOW_FILES:
        shipped = ShippedWorkflow.load(path)
        names = {node["name"] for node in shipped.data["nodes"]}
        assert {"Probe?", "Answer probe", "Accept"} <= names
        [webhook] = [n for n in shipped.data["nodes"] if n["type"] == "n8n-nodes-base.webhook"]
        if path.parent.name == "tests" or shipped.webhook_path == "chat-feedback":
            # A test workflow, and the feedback workflow (nothing to stream),
            # answer the plain way.
            assert webhook["parameters"]["responseMode"] == "responseNode"
            continue
        # The shipped ones stream, through nodes that do so in 2.8.4 and 2.41 alike.
        assert (webhook["typeVersion"], webhook["parameters"]["responseMode"]) == (2.1, "streaming")
        for node in shipped.data["nodes"]:
            if node["type"] == "n8n-nodes-base.respondToWebhook":
                assert node["typeVersion"] == 1.5
                assert node["parameters"]["options"]["enableStreaming"] is True
