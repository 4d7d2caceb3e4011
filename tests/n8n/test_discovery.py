"""Which n8n workflows are assistants (n8n/discovery.py), from the workflow
objects n8n's public API lists (the real-n8n tests run it against n8n)."""

from n8n.discovery import chat_workflow


def workflow(**extra):
    base = {
        "id": "wf1",
        "name": "Support bot",
        "active": True,
        "tags": [{"id": "1", "name": "chat"}],
        "nodes": [
            {
                "name": "Start",
                "type": "n8n-nodes-base.webhook",
                "notes": "Knows our docs.",
                "parameters": {"path": "/support/", "responseMode": "streaming"},
            },
        ],
    }
    base.update(extra)
    return base


def test_an_active_tagged_workflow_with_a_webhook_is_an_assistant():
    found = chat_workflow(workflow())
    assert found.n8n_id == "wf1"
    assert found.name == "Support bot"
    assert found.webhook_path == "support"
    assert found.description == "Knows our docs."
    assert found.streams is True


def test_the_workflows_own_description_comes_first():
    assert chat_workflow(workflow(description="Our docs, answered.")).description == (
        "Our docs, answered."
    )


def test_the_tag_is_matched_whatever_its_case():
    assert chat_workflow(workflow(tags=[{"name": "Chat"}])) is not None


def test_inactive_untagged_or_webhookless_workflows_are_not():
    assert chat_workflow(workflow(active=False)) is None
    assert chat_workflow(workflow(tags=[{"name": "support"}])) is None
    assert chat_workflow(workflow(tags=None)) is None
    assert chat_workflow(workflow(nodes=[{"type": "n8n-nodes-base.manualTrigger"}])) is None
    disabled = {"type": "n8n-nodes-base.webhook", "disabled": True, "parameters": {"path": "x"}}
    assert chat_workflow(workflow(nodes=[disabled])) is None
