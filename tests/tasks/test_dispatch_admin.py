"""The admin's task actions ("dispatch again", "mark failed") and attempt history."""

import pytest
from django.urls import reverse

from tasks import services
from tasks.models import AsyncTask
from tests.task_support import chat_task

pytestmark = pytest.mark.django_db


def run_action(admin_client, action, *tasks):
    return admin_client.post(
        reverse("admin:tasks_asynctask_changelist"),
        {"action": action, "_selected_action": [t.pk for t in tasks]},
        follow=True,
    )


def test_mark_failed_action_fails_unfinished_tasks(admin_client, admin_user, user):
    task = chat_task(user)
    response = run_action(admin_client, "mark_failed", task)
    assert response.status_code == 200
    task.refresh_from_db()
    assert task.status == "failed"
    assert f"by {admin_user.get_username()} in the admin" in task.status_message
    assert "Marked failed: 1" in response.content.decode()


def test_dispatch_again_action_sends_a_failed_task_again(
    admin_client, user, django_capture_on_commit_callbacks
):
    task = chat_task(user)
    services.mark_failed(task.pk)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = run_action(admin_client, "dispatch_again", task)
    assert "Sent again: 1" in response.content.decode()
    assert AsyncTask.objects.get(pk=task.pk).status == "pending"
    assert callbacks


def test_dispatch_again_leaves_a_completed_task_alone(admin_client, user):
    task = chat_task(user)
    AsyncTask.objects.filter(pk=task.pk).update(status="completed")
    response = run_action(admin_client, "dispatch_again", task)
    assert "Left alone: 1" in response.content.decode()
    assert AsyncTask.objects.get(pk=task.pk).status == "completed"


def test_the_change_page_shows_the_attempt_history(admin_client, user, settings):
    settings.N8N_BASE_URL = "http://127.0.0.1:9"  # nothing listens: a connection error
    settings.TASK_DISPATCH_CONNECT_TIMEOUT = 0.5
    task = chat_task(user)
    services.claim_and_dispatch(task.pk)
    page = admin_client.get(reverse("admin:tasks_asynctask_change", args=[task.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "attempt history" in html.lower()
    assert "retryable" in html
    assert "could not connect to http://127.0.0.1:9" in html


def test_the_actions_are_not_for_normal_users(client, user):
    task = chat_task(user)
    client.force_login(user)
    response = run_action(client, "mark_failed", task)
    assert AsyncTask.objects.get(pk=task.pk).status == "pending"
    assert (
        response.redirect_chain
        or response.status_code != 200
        or "login" in response.content.decode()
    )


# --- Who may run the actions (finding N6) ------------------------------------------------

ACTIONS = ("dispatch_again", "mark_failed", "stop")


def staff_with(make_user, *codenames):
    from django.contrib.auth.models import Permission

    staff = make_user("viewer", is_staff=True)
    staff.user_permissions.set(
        Permission.objects.filter(content_type__app_label="tasks", codename__in=codenames)
    )
    return staff


def test_a_view_only_staff_user_is_offered_none_of_the_actions(client, make_user, user):
    chat_task(user)
    client.force_login(staff_with(make_user, "view_asynctask"))
    response = client.get(reverse("admin:tasks_asynctask_changelist"))
    assert response.status_code == 200
    html = response.content.decode()
    for action in ACTIONS:
        assert f'value="{action}"' not in html


@pytest.mark.parametrize("action", ACTIONS)
def test_a_view_only_staff_user_cannot_post_an_action(client, make_user, user, action):
    task = chat_task(user)
    if action == "dispatch_again":
        services.mark_failed(task.pk)
    before = AsyncTask.objects.get(pk=task.pk)
    client.force_login(staff_with(make_user, "view_asynctask"))
    run_action(client, action, task)
    after = AsyncTask.objects.get(pk=task.pk)
    assert (after.status, after.version) == (before.status, before.version)


def test_staff_with_the_change_permission_runs_the_actions(client, make_user, user):
    task = chat_task(user)
    client.force_login(staff_with(make_user, "view_asynctask", "change_asynctask"))
    html = client.get(reverse("admin:tasks_asynctask_changelist")).content.decode()
    for action in ACTIONS:
        assert f'value="{action}"' in html
    response = run_action(client, "mark_failed", task)
    assert "Marked failed: 1" in response.content.decode()
    assert AsyncTask.objects.get(pk=task.pk).status == "failed"
