"""Branching conversations: the tree, the branch a page shows, regenerate, edit."""

import json
import re
import threading

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from chat import services
from chat.models import Conversation, Message, Role
from tasks import door
from tasks.models import AsyncTask, EventSource, TaskStatus
from tests import factories

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def conversation(user):
    return factories.conversation(user, title="Branches")


def complete(task, content):
    """The workflow's `completed` callback, through the one door."""
    door.change(
        task.pk,
        source=EventSource.CALLBACK,
        status=TaskStatus.COMPLETED,
        output_data={"content": content},
    )
    return Message.objects.get(async_task_id=task.pk, role=Role.ASSISTANT)


def exchange(user, conversation, text, reply, parent_id=None):
    question = services.send_message(user, conversation, text, parent_id=parent_id)
    return question, complete(question.async_task, reply)


def shown_ids(html):
    listed = html[html.index('<ol id="messages"') : html.index('id="composer"')]
    return [int(pk) for pk in re.findall(r'<li class="message[^"]*" id="message-(\d+)"', listed)]


def message_html(html, message):
    """One message's fragment (up to the next message or the composer)."""
    start = html.index(f'id="message-{message.pk}"')
    ends = [html.find(mark, start + 1) for mark in ('<li class="message', 'id="composer"')]
    return html[start : min(end for end in ends if end != -1)]


def page(client, conversation, query=""):
    response = client.get(f"/chat/{conversation.pk}/{query}")
    assert response.status_code == 200
    return response.content.decode()


def regenerate_url(conversation, message):
    return f"/chat/{conversation.pk}/messages/{message.pk}/regenerate/"


def edit_url(conversation, message):
    return f"/chat/{conversation.pk}/messages/{message.pk}/edit/"


@pytest.fixture
def tree(user, conversation):
    """q1 → a1 → q2 → a2, then a2 regenerated (a2b) and q2 edited (q2e → a2e)."""
    q1, a1 = exchange(user, conversation, "first question", "first answer")
    q2, a2 = exchange(user, conversation, "second question", "second answer")
    services.regenerate(user, conversation, a2)
    q2.refresh_from_db()
    a2b = complete(q2.async_task, "second answer, again")
    q2e = services.edit(user, conversation, q2, "second question, edited")
    a2e = complete(q2e.async_task, "answer to the edit")
    return {"q1": q1, "a1": a1, "q2": q2, "a2": a2, "a2b": a2b, "q2e": q2e, "a2e": a2e}


# --- the tree ---------------------------------------------------------------------


def test_a_send_follows_the_leaf_the_page_shows(user, conversation):
    question, answer = exchange(user, conversation, "hello", "hi")
    assert question.parent_id is None
    assert answer.parent_id == question.pk
    follow_up = services.send_message(user, conversation, "and then?")
    assert follow_up.parent_id == answer.pk


def test_a_send_with_parent_id_continues_that_branch(user_client, user, conversation, tree):
    response = user_client.post(
        f"/chat/{conversation.pk}/messages/",
        {"content": "back on the old branch", "parent_id": tree["a2"].pk},
    )
    assert response.status_code == 303
    message = Message.objects.get(content="back on the old branch")
    assert message.parent_id == tree["a2"].pk
    assert shown_ids(page(user_client, conversation)) == [
        tree["q1"].pk,
        tree["a1"].pk,
        tree["q2"].pk,
        tree["a2"].pk,
        message.pk,
    ]


@pytest.mark.parametrize("parent", ["other-conversation", "nonsense", "-3"])
def test_a_send_with_a_foreign_or_bad_parent_is_refused_and_stores_nothing(
    user_client, user, conversation, parent
):
    other = factories.message(factories.conversation(user, title="other"), "elsewhere")
    value = str(other.pk) if parent == "other-conversation" else parent
    before = Message.objects.count()
    response = user_client.post(
        f"/chat/{conversation.pk}/messages/", {"content": "hi", "parent_id": value}, **JSON
    )
    assert response.status_code == 400
    assert Message.objects.count() == before
    assert AsyncTask.objects.count() == 0


def test_default_page_shows_the_newest_branch(user_client, conversation, tree):
    assert shown_ids(page(user_client, conversation)) == [
        tree["q1"].pk,
        tree["a1"].pk,
        tree["q2e"].pk,
        tree["a2e"].pk,
    ]


def test_leaf_shows_the_branch_ending_at_that_message(user_client, conversation, tree):
    html = page(user_client, conversation, f"?leaf={tree['a2'].pk}")
    assert shown_ids(html) == [tree["q1"].pk, tree["a1"].pk, tree["q2"].pk, tree["a2"].pk]
    # A send from this page continues this branch.
    assert f'<input type="hidden" name="parent_id" value="{tree["a2"].pk}">' in html


def test_leaf_of_another_conversation_is_a_404(user_client, user, conversation, tree):
    other = factories.message(factories.conversation(user, title="other"), "elsewhere")
    assert user_client.get(f"/chat/{conversation.pk}/?leaf={other.pk}").status_code == 404


def test_leaf_of_another_users_conversation_is_a_404(user_client, other_user, conversation, tree):
    theirs = factories.message(factories.conversation(other_user), "theirs")
    assert user_client.get(f"/chat/{conversation.pk}/?leaf={theirs.pk}").status_code == 404
    response = Client()
    response.force_login(other_user)
    assert response.get(f"/chat/{conversation.pk}/?leaf={tree['a2'].pk}").status_code == 404


@pytest.mark.parametrize("value", ["abc", "0", "-1", "99999999999999999999"])
def test_leaf_that_is_not_a_message_id_is_a_404(user_client, conversation, tree, value):
    assert user_client.get(f"/chat/{conversation.pk}/?leaf={value}").status_code == 404


def test_switch_shows_i_of_n_with_links_to_the_newest_leaf_under_each_sibling(
    user_client, conversation, tree
):
    html = page(user_client, conversation)
    q2e = message_html(html, tree["q2e"])
    assert '<span class="versions__count">2 / 2</span>' in q2e
    # The previous version of the edited question leads to the newest leaf
    # under it: the regenerated answer, not the first one.
    assert f'href="/chat/{conversation.pk}/?leaf={tree["a2b"].pk}"' in q2e
    old = page(user_client, conversation, f"?leaf={tree['a2'].pk}")
    a2 = message_html(old, tree["a2"])
    assert '<span class="versions__count">1 / 2</span>' in a2
    assert f'href="/chat/{conversation.pk}/?leaf={tree["a2b"].pk}"' in a2
    assert "versions__count" not in message_html(old, tree["q1"])


def test_a_message_without_siblings_has_no_switch(user_client, user, conversation):
    exchange(user, conversation, "hello", "hi")
    assert "versions__count" not in page(user_client, conversation)


def test_every_control_of_a_message_works_without_javascript(user_client, conversation, tree):
    html = page(user_client, conversation)
    # Regenerate buttons submit the page's one form (with its CSRF token) to
    # their own address, so cached and live fragments need no token.
    action = re.search(r'<form id="message-action" method="post"[^>]*>(.*?)</form>', html, re.S)
    assert action and 'name="csrfmiddlewaretoken"' in action.group(1)
    assert (
        f'form="message-action" '
        f'formaction="/chat/{conversation.pk}/messages/{tree["a2e"].pk}/regenerate/"'
    ) in html
    assert f'href="/chat/{conversation.pk}/messages/{tree["q2e"].pk}/edit/"' in html


# --- fast on long trees --------------------------------------------------------------


def branchy_tree(user, conversation, length, fork_every):
    """A branch of `length` messages with an extra reply every `fork_every`
    messages (a regenerate), plus a long abandoned branch near the root."""
    from datetime import timedelta

    from django.utils import timezone

    start = timezone.now() - timedelta(days=1)
    rows = []
    seconds = 0
    for i in range(length):
        seconds += 1
        row = Message(
            conversation=conversation,
            role=Role.USER if i % 2 == 0 else Role.ASSISTANT,
            content=f"message {i}",
            created_at=start + timedelta(seconds=seconds),
        )
        row.render()
        rows.append(row)
    Message.objects.bulk_create(rows)
    for previous, row in zip(rows, rows[1:], strict=False):
        row.parent_id = previous.pk
    Message.objects.bulk_update(rows[1:], ["parent"], batch_size=500)
    forks = []
    for i in range(1, length, fork_every):
        if rows[i].role == Role.ASSISTANT:
            seconds += 1
            forks.append(
                Message(
                    conversation=conversation,
                    role=Role.ASSISTANT,
                    content=f"another reply {i}",
                    parent_id=rows[i - 1].pk,
                    created_at=start + timedelta(seconds=seconds),
                )
            )
    Message.objects.bulk_create(forks)
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf_id=rows[-1].pk)
    return rows


def count_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_a_branchy_10000_message_tree_costs_the_queries_of_a_short_one(user_client, user, settings):
    short = factories.conversation(user, title="short")
    branchy_tree(user, short, 10, fork_every=1000)
    big = factories.conversation(user, title="big")
    rows = branchy_tree(user, big, 10_000, fork_every=7)
    small_count = count_queries(user_client, f"/chat/{short.pk}/")
    html = page(user_client, big)
    assert shown_ids(html) == [row.pk for row in rows[-settings.CHAT_PAGE_SIZE :]]
    assert "versions__count" in html
    assert count_queries(user_client, f"/chat/{big.pk}/") == small_count
    assert count_queries(user_client, f"/chat/{big.pk}/?leaf={rows[-3].pk}") == small_count


def test_load_earlier_walks_up_the_branch(user_client, user, settings, conversation):
    settings.CHAT_PAGE_SIZE = 4
    rows = branchy_tree(user, conversation, 10, fork_every=3)
    html = page(user_client, conversation, f"?before={rows[6].pk}")
    assert shown_ids(html) == [row.pk for row in rows[2:6]]


# --- history follows the branch --------------------------------------------------------


def test_history_is_the_branch_before_the_message(user, conversation, tree):
    services.send_message(user, conversation, "next", parent_id=tree["a2"].pk)
    task = AsyncTask.objects.order_by("-pk").first()
    assert task.input_data["history"] == [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
        {"role": "assistant", "content": "second answer"},
    ]


def test_history_of_an_edit_leaves_out_the_version_it_replaces(user, conversation, tree):
    assert tree["q2e"].async_task.input_data["history"] == [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
    ]


def test_history_on_a_branch_is_bounded_and_oldest_first(user, conversation, settings):
    settings.CHAT_HISTORY_LIMIT = 3
    for i in range(4):
        exchange(user, conversation, f"q{i}", f"a{i}")
    message = services.send_message(user, conversation, "last")
    assert message.async_task.input_data["history"] == [
        {"role": "assistant", "content": "a2"},
        {"role": "user", "content": "q3"},
        {"role": "assistant", "content": "a3"},
    ]


# --- regenerate --------------------------------------------------------------------------


def test_regenerate_asks_again_for_the_question_and_keeps_the_old_reply(
    user_client, user, conversation
):
    question, answer = exchange(user, conversation, "hello", "hi")
    old_task = question.async_task
    response = user_client.post(regenerate_url(conversation, answer))
    assert response.status_code == 303
    assert response["Location"] == f"/chat/{conversation.pk}/#message-{question.pk}"
    question.refresh_from_db()
    assert question.async_task_id != old_task.pk
    assert question.async_task.status == TaskStatus.PENDING
    assert question.async_task.input_data["message_id"] == question.pk
    assert Message.objects.filter(pk=answer.pk).exists()
    # The default page shows the new branch: the question, waiting for its reply.
    assert shown_ids(page(user_client, conversation)) == [question.pk]
    new = complete(question.async_task, "hi again")
    assert new.parent_id == question.pk
    assert shown_ids(page(user_client, conversation)) == [question.pk, new.pk]
    answer.refresh_from_db()
    assert answer.parent_id == question.pk  # siblings


def test_regenerate_as_json_answers_201_naming_the_question(user_client, user, conversation):
    question, answer = exchange(user, conversation, "hello", "hi")
    response = user_client.post(regenerate_url(conversation, answer), **JSON)
    assert response.status_code == 201
    body = response.json()
    assert body["message"]["id"] == question.pk
    assert body["task"]["status"] == "pending"
    assert body["task"]["id"] == Message.objects.get(pk=question.pk).async_task_id


def test_the_old_task_of_a_regenerated_reply_is_superseded_the_new_one_is_not(user, conversation):
    from tasks.lifecycle import superseded

    question, answer = exchange(user, conversation, "hello", "hi")
    old_task = question.async_task
    services.regenerate(user, conversation, answer)
    question.refresh_from_db()
    assert superseded(old_task)
    assert not superseded(question.async_task)


def test_regenerate_is_refused_while_a_reply_is_unfinished(user_client, user, conversation):
    question, answer = exchange(user, conversation, "hello", "hi")
    services.send_message(user, conversation, "more")
    tasks = AsyncTask.objects.count()
    response = user_client.post(regenerate_url(conversation, answer), **JSON)
    assert response.status_code == 409
    assert AsyncTask.objects.count() == tasks
    question.refresh_from_db()
    assert question.async_task.status == TaskStatus.COMPLETED


def test_regenerate_of_a_user_message_is_a_404(user_client, user, conversation):
    question, _answer = exchange(user, conversation, "hello", "hi")
    assert user_client.post(regenerate_url(conversation, question)).status_code == 404


def test_regenerate_of_a_reply_that_answers_no_question_is_refused(user_client, user, conversation):
    orphan = factories.message(conversation, "a note", role=Role.ASSISTANT)
    response = user_client.post(regenerate_url(conversation, orphan), **JSON)
    assert response.status_code == 409
    assert AsyncTask.objects.count() == 0


def test_regenerate_of_another_users_message_is_a_404(other_client, user, conversation):
    _question, answer = exchange(user, conversation, "hello", "hi")
    assert other_client.post(regenerate_url(conversation, answer)).status_code == 404
    assert AsyncTask.objects.count() == 1


def test_regenerate_through_another_conversation_is_a_404(user_client, user, conversation):
    _question, answer = exchange(user, conversation, "hello", "hi")
    mine = factories.conversation(user, title="mine too")
    response = user_client.post(f"/chat/{mine.pk}/messages/{answer.pk}/regenerate/")
    assert response.status_code == 404


def test_regenerate_by_an_anonymous_user_goes_to_login(client, user, conversation):
    _question, answer = exchange(user, conversation, "hello", "hi")
    response = client.post(regenerate_url(conversation, answer))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert AsyncTask.objects.count() == 1


def test_regenerate_needs_the_csrf_token(user, conversation):
    _question, answer = exchange(user, conversation, "hello", "hi")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(regenerate_url(conversation, answer)).status_code == 403
    assert AsyncTask.objects.count() == 1


def test_regenerate_by_get_is_refused(user_client, user, conversation):
    _question, answer = exchange(user, conversation, "hello", "hi")
    assert user_client.get(regenerate_url(conversation, answer)).status_code == 405


def test_regenerate_is_rate_limited_like_sends(user_client, user, conversation, settings):
    settings.CHAT_RATE_LIMIT = "1/m"
    _question, answer = exchange(user, conversation, "hello", "hi")
    assert user_client.post(regenerate_url(conversation, answer)).status_code == 303
    tasks = AsyncTask.objects.count()
    response = user_client.post(regenerate_url(conversation, answer), **JSON)
    assert response.status_code == 429
    assert "retry_after" in response.json()
    assert AsyncTask.objects.count() == tasks


# --- edit -----------------------------------------------------------------------------------


def test_edit_stores_a_sibling_with_its_task_and_keeps_the_original(
    user_client, user, conversation
):
    q1, a1 = exchange(user, conversation, "hello", "hi")
    q2, a2 = exchange(user, conversation, "how far is it", "far")
    response = user_client.post(edit_url(conversation, q2), {"content": "how near is it"})
    assert response.status_code == 303
    edited = Message.objects.get(content="how near is it")
    assert response["Location"] == f"/chat/{conversation.pk}/#message-{edited.pk}"
    assert edited.parent_id == q2.parent_id == a1.pk
    assert edited.role == Role.USER
    assert edited.async_task.status == TaskStatus.PENDING
    assert Message.objects.filter(pk__in=[q2.pk, a2.pk]).count() == 2
    assert shown_ids(page(user_client, conversation)) == [q1.pk, a1.pk, edited.pk]


def test_edit_of_the_first_message_starts_a_second_root(user_client, user, conversation):
    q1, _a1 = exchange(user, conversation, "hello", "hi")
    user_client.post(edit_url(conversation, q1), {"content": "good morning"})
    edited = Message.objects.get(content="good morning")
    assert edited.parent_id is None
    assert edited.async_task.input_data["history"] == []
    html = page(user_client, conversation)
    assert shown_ids(html) == [edited.pk]
    assert '<span class="versions__count">2 / 2</span>' in html


def test_edit_as_json_answers_201_naming_the_new_message(user_client, user, conversation):
    question, _answer = exchange(user, conversation, "hello", "hi")
    response = user_client.post(edit_url(conversation, question), {"content": "hey"}, **JSON)
    assert response.status_code == 201
    body = response.json()
    edited = Message.objects.get(content="hey")
    assert body["message"]["id"] == edited.pk
    assert body["task"]["id"] == edited.async_task_id


@pytest.mark.parametrize("content", ["", "   \n "])
def test_edit_to_nothing_is_refused_and_stores_nothing(user_client, user, conversation, content):
    question, _answer = exchange(user, conversation, "hello", "hi")
    before = Message.objects.count(), AsyncTask.objects.count()
    response = user_client.post(edit_url(conversation, question), {"content": content}, **JSON)
    assert response.status_code == 400
    assert "error" in response.json()
    assert (Message.objects.count(), AsyncTask.objects.count()) == before


def test_an_over_long_edit_is_refused_on_the_edit_page(user_client, user, conversation, settings):
    settings.CHAT_MESSAGE_MAX_LENGTH = 10
    question, _answer = exchange(user, conversation, "hello", "hi")
    response = user_client.post(edit_url(conversation, question), {"content": "x" * 11})
    assert response.status_code == 400
    assert "the limit is 10" in response.content.decode()
    assert Message.objects.count() == 2


def test_edit_is_refused_while_a_reply_is_unfinished(user_client, user, conversation):
    question = services.send_message(user, conversation, "hello")
    response = user_client.post(edit_url(conversation, question), {"content": "hey"}, **JSON)
    assert response.status_code == 409
    assert Message.objects.count() == 1


def test_edit_of_an_assistant_message_is_a_404(user_client, user, conversation):
    _question, answer = exchange(user, conversation, "hello", "hi")
    assert user_client.post(edit_url(conversation, answer), {"content": "x"}).status_code == 404


def test_edit_of_another_users_message_is_a_404(other_client, user, conversation):
    question, _answer = exchange(user, conversation, "hello", "hi")
    response = other_client.post(edit_url(conversation, question), {"content": "mine now"})
    assert response.status_code == 404
    assert other_client.get(edit_url(conversation, question)).status_code == 404
    assert not Message.objects.filter(content="mine now").exists()


def test_edit_by_an_anonymous_user_goes_to_login(client, user, conversation):
    question, _answer = exchange(user, conversation, "hello", "hi")
    response = client.post(edit_url(conversation, question), {"content": "hey"})
    assert response.status_code == 302
    assert not Message.objects.filter(content="hey").exists()


def test_edit_needs_the_csrf_token(user, conversation):
    question, _answer = exchange(user, conversation, "hello", "hi")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(edit_url(conversation, question), {"content": "hey"}).status_code == 403
    assert not Message.objects.filter(content="hey").exists()


def test_the_edit_page_is_a_form_with_the_text(user_client, user, conversation):
    question, _answer = exchange(user, conversation, "hello <b>there</b>", "hi")
    html = user_client.get(edit_url(conversation, question)).content.decode()
    assert f'<form method="post" action="{edit_url(conversation, question)}"' in html
    assert "hello &lt;b&gt;there&lt;/b&gt;</textarea>" in html
    assert 'name="csrfmiddlewaretoken"' in html


def test_edit_is_rate_limited_like_sends(user_client, user, conversation, settings):
    settings.CHAT_RATE_LIMIT = "1/m"
    question, _answer = exchange(user, conversation, "hello", "hi")
    user_client.post(f"/chat/{conversation.pk}/messages/", {"content": "one"})
    response = user_client.post(edit_url(conversation, question), {"content": "hey"}, **JSON)
    assert response.status_code == 429
    assert not Message.objects.filter(content="hey").exists()


# --- replies, frames and sync per branch -------------------------------------------------------


def test_a_reply_moves_the_default_branch_only_from_its_own_question(user, conversation):
    question, _answer = exchange(user, conversation, "hello", "hi")
    services.regenerate(user, conversation, _answer)
    question.refresh_from_db()
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf_id=_answer.pk)
    complete(question.async_task, "hi again")
    conversation.refresh_from_db()
    assert conversation.current_leaf_id == _answer.pk


def test_a_message_frame_fragment_names_its_parent_and_versions(user, conversation, tree):
    frame = services.message_frame(Message.objects.get(pk=tree["a2b"].pk))
    assert f'data-parent-id="{tree["q2"].pk}"' in frame["html"]
    assert '<span class="versions__count">2 / 2</span>' in frame["html"]


def test_sync_sends_messages_of_every_branch_with_their_parent(user, conversation, tree):
    from chat.consumers import sync_frames

    frames = sync_frames(conversation, tree["q2"].pk)
    ids = [f["message"]["id"] for f in frames if f["type"] == "message.created"]
    assert ids == sorted(ids) and tree["a2"].pk in ids and tree["a2e"].pk in ids
    a2b = next(f for f in frames if f.get("message", {}).get("id") == tree["a2b"].pk)
    assert f'data-parent-id="{tree["q2"].pk}"' in a2b["html"]


# --- export -----------------------------------------------------------------------------------


def export(client, conversation, query):
    response = client.get(f"/chat/{conversation.pk}/export/{query}")
    assert response.status_code == 200
    with pytest.warns(Warning, match="consume asynchronous iterators"):
        return b"".join(response).decode()


def test_json_export_carries_the_whole_tree(user_client, conversation, tree):
    data = json.loads(export(user_client, conversation, "?format=json"))
    parents = {record["id"]: record["parent_id"] for record in data["messages"]}
    assert parents == {
        tree["q1"].pk: None,
        tree["a1"].pk: tree["q1"].pk,
        tree["q2"].pk: tree["a1"].pk,
        tree["a2"].pk: tree["q2"].pk,
        tree["a2b"].pk: tree["q2"].pk,
        tree["q2e"].pk: tree["a1"].pk,
        tree["a2e"].pk: tree["q2e"].pk,
    }


def test_markdown_export_is_the_current_branch(user_client, conversation, tree):
    text = export(user_client, conversation, "?format=md")
    assert "second question, edited" in text and "answer to the edit" in text
    assert "second answer" not in text


def test_markdown_export_of_a_chosen_branch(user_client, conversation, tree):
    text = export(user_client, conversation, f"?format=md&leaf={tree['a2'].pk}")
    assert text.index("first answer") < text.index("second question") < text.index("second answer")
    assert "edited" not in text


def test_markdown_export_of_a_foreign_leaf_is_a_404(user_client, user, other_user, conversation):
    theirs = factories.message(factories.conversation(other_user), "theirs")
    response = user_client.get(f"/chat/{conversation.pk}/export/?format=md&leaf={theirs.pk}")
    assert response.status_code == 404


# --- concurrency ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_regenerate_and_send_racing_one_wins_the_other_is_refused(
    make_user, monkeypatch, postgres_only
):
    import tasks.outbound.dispatch

    monkeypatch.setattr(tasks.outbound.dispatch, "schedule_dispatch", lambda pk: None)
    owner = make_user("racer")
    conversation = factories.conversation(owner)
    question, answer = exchange(owner, conversation, "hello", "hi")
    tasks_before = AsyncTask.objects.count()
    for round_ in range(5):
        barrier = threading.Barrier(2)
        outcomes = []

        def act(kind, round_=round_, barrier=barrier, outcomes=outcomes, answer=answer):
            try:
                barrier.wait(timeout=10)
                if kind == "regenerate":
                    services.regenerate(owner, conversation, answer)
                else:
                    services.send_message(owner, conversation, f"racing {round_}")
                outcomes.append((kind, "done"))
            except services.SendRefused as refused:
                outcomes.append((kind, refused.code))
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                outcomes.append((kind, repr(exc)))
            finally:
                connection.close()

        threads = [threading.Thread(target=act, args=(k,)) for k in ("regenerate", "send")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(result for _kind, result in outcomes) == ["busy", "done"], outcomes
        assert AsyncTask.objects.count() == tasks_before + round_ + 1
        # Finish the winner's task so the next round can race again.
        unfinished = AsyncTask.objects.get(status=TaskStatus.PENDING)
        complete(unfinished, f"reply {round_}")
        answer = Message.objects.filter(role=Role.ASSISTANT).order_by("-pk").first()
        if answer.parent.role != Role.USER:  # pragma: no cover - defensive
            break


# --- shipped workflows -------------------------------------------------------------------------


def shipped_workflows():
    from pathlib import Path

    from django.conf import settings

    # The chat workflows (feedback.json answers no conversation).
    return sorted((Path(settings.BASE_DIR) / "n8n").glob("chat-reply*.json"))


@pytest.mark.parametrize("path", shipped_workflows(), ids=lambda path: path.name)
def test_shipped_workflows_take_the_branch_from_history_not_from_a_memory_node(path):
    workflow = json.loads(path.read_text())
    types = [node["type"] for node in workflow["nodes"]]
    assert not [kind for kind in types if "memory" in kind.lower()]
    assert "input.history" in json.dumps(workflow)


def test_a_replys_live_frame_counts_its_versions_only_when_it_has_siblings(
    user, conversation, monkeypatch, django_capture_on_commit_callbacks
):
    from live import publish as live

    sent = []
    monkeypatch.setattr(live, "send", lambda sends, on_sent=None: sent.extend(sends))

    def reply_frame(task, content):
        sent.clear()
        with django_capture_on_commit_callbacks(execute=True):
            complete(task, content)
        return next(m["frame"] for _g, m in sent if m["frame"]["type"] == "message.created")

    question = services.send_message(user, conversation, "hello")
    first = reply_frame(question.async_task, "hi")
    assert "versions__count" not in first["html"]
    assert f'data-parent-id="{question.pk}"' in first["html"]
    services.regenerate(user, conversation, Message.objects.get(pk=first["message"]["id"]))
    question.refresh_from_db()
    second = reply_frame(question.async_task, "hi again")
    assert '<span class="versions__count">2 / 2</span>' in second["html"]


# --- the switch comes from the server, live too ---------------------------------------


def test_a_new_versions_frame_carries_the_switch_of_each_other_version(user, conversation, tree):
    # a2 and a2b answer q2; a page showing a2 swaps in the switch the frame names for it.
    frame = services.message_frame(Message.objects.get(pk=tree["a2b"].pk))
    assert set(frame["switches"]) == {str(tree["a2"].pk)}
    switch = frame["switches"][str(tree["a2"].pk)]
    assert switch.startswith('<nav class="versions" aria-label="Version 1 of 2" data-count="2">')
    assert '<span class="versions__count">1 / 2</span>' in switch
    assert f'data-leaf="{tree["a2b"].pk}" rel="next"' in switch
    assert '<span class="versions__previous" aria-hidden="true">‹</span>' in switch
    # The same markup as the switch in a2's own fragment.
    assert switch in services.message_frame(Message.objects.get(pk=tree["a2"].pk))["html"]


def test_a_message_without_other_versions_carries_no_switches(user, conversation, tree):
    frame = services.message_frame(Message.objects.get(pk=tree["a1"].pk))
    assert "switches" not in frame


def test_a_switch_counts_every_version_with_links_to_its_neighbours(user, conversation, tree):
    services.regenerate(user, conversation, tree["a2b"])
    q2 = Message.objects.get(pk=tree["q2"].pk)
    a2c = complete(q2.async_task, "a third answer")
    switches = services.message_frame(a2c)["switches"]
    assert set(switches) == {str(tree["a2"].pk), str(tree["a2b"].pk)}
    middle = switches[str(tree["a2b"].pk)]
    assert '<span class="versions__count">2 / 3</span>' in middle
    assert f'data-leaf="{tree["a2"].pk}" rel="prev"' in middle
    assert f'data-leaf="{a2c.pk}" rel="next"' in middle


def test_the_composer_always_has_the_parent_field_the_script_sets(user_client, user):
    empty = factories.conversation(user, title="Empty")
    html = page(user_client, empty)
    # Sends from an empty conversation follow its current leaf: the field is off.
    assert '<input type="hidden" name="parent_id" value="" disabled>' in html
    new_page = user_client.get("/chat/new/").content.decode()
    assert 'name="parent_id"' not in new_page
