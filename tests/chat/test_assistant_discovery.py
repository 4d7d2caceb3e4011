"""Discovered workflows made assistant rows (chat/assistants.apply_discovered):
created, updated, deactivated but never deleted, idempotent."""

import pytest

from chat.assistants import apply_discovered
from chat.models import Assistant
from n8n.discovery import ChatWorkflow

pytestmark = pytest.mark.django_db


def found(n8n_id, name, path=None, description="", streams=False):
    return ChatWorkflow(n8n_id, name, path or name.lower(), description, streams)


def test_created_then_unchanged_on_a_second_run():
    workflows = [found("1", "Support"), found("2", "Writer", description="House style.")]
    assert apply_discovered(workflows, {"1", "2"}) == [
        'assistant "Support" (/webhook/support): created',
        'assistant "Writer" (/webhook/writer): created',
        'assistant "Support" (/webhook/support): made the default',
    ]
    assert apply_discovered(workflows, {"1", "2"}) == [
        'assistant "Support" (/webhook/support): unchanged',
        'assistant "Writer" (/webhook/writer): unchanged',
    ]
    assert Assistant.objects.get(name="Writer").description == "House style."
    assert list(Assistant.objects.filter(is_default=True).values_list("name", flat=True)) == [
        "Support"
    ]


def test_a_renamed_or_moved_workflow_updates_its_row():
    apply_discovered([found("1", "Support")], {"1"})
    [line, *_] = apply_discovered([found("1", "Helpdesk", path="help")], {"1"})
    assert line == 'assistant "Helpdesk" (/webhook/help): updated (name, workflow_id)'
    assert Assistant.objects.get().name == "Helpdesk"


def test_a_workflow_no_longer_found_deactivates_its_assistant_never_deleting_it():
    apply_discovered([found("1", "Support"), found("2", "Writer")], {"1", "2"})
    lines = apply_discovered([found("1", "Support")], {"1", "2"})
    assert (
        'assistant "Writer" (/webhook/writer): deactivated (workflow not tagged chat or not active)'
        in lines
    )
    lines = apply_discovered([found("1", "Support")], {"1"})
    assert 'assistant "Writer" (/webhook/writer): inactive' in lines
    assert Assistant.objects.get(name="Writer").is_active is False
    apply_discovered([found("1", "Support"), found("2", "Writer")], {"1", "2"})
    assert Assistant.objects.get(name="Writer").is_active is True


def test_assistants_made_in_the_admin_are_left_alone_unless_a_workflow_takes_their_name():
    Assistant.objects.create(name="Manual", workflow_id="manual")
    Assistant.objects.create(name="Support", workflow_id="old-path")
    apply_discovered([found("1", "Support", path="support")], {"1"})
    assert Assistant.objects.get(name="Manual").is_active  # not discovered, not deactivated
    adopted = Assistant.objects.get(name="Support")
    assert (adopted.workflow_id, adopted.n8n_workflow_id) == ("support", "1")


def test_two_workflows_of_one_name_get_distinct_names():
    apply_discovered([found("1", "Bot", path="a"), found("2", "Bot", path="b")], {"1", "2"})
    assert sorted(Assistant.objects.values_list("name", flat=True)) == ["Bot", "Bot (2)"]
    again = apply_discovered([found("1", "Bot", path="a"), found("2", "Bot", path="b")], {"1", "2"})
    assert all(line.endswith(("unchanged",)) for line in again)
