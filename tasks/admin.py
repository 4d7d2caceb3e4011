import json

from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from . import services
from .models import AsyncTask, EventSource, TaskWords

# The admin shows at most this much of one JSON value.
PRETTY_JSON_MAX_CHARS = 20_000


def pretty_json(value):
    if value in (None, "", {}):
        return "—"
    try:
        text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    except (RecursionError, ValueError, TypeError):
        text = "(a value too deeply nested to show)"
    if len(text) > PRETTY_JSON_MAX_CHARS:
        text = text[:PRETTY_JSON_MAX_CHARS] + "\n… (cut)"
    return format_html('<pre class="task-json">{}</pre>', text)


TASK_FIELDS = (
    "task_type",
    "workflow_id",
    "created_by",
    "status",
    "current_step",
    "status_message",
    "n8n_execution_id",
)


@admin.register(AsyncTask)
class AsyncTaskAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "task_type",
        "status",
        "current_step",
        "created_by",
        "n8n_execution_id",
        "attempts",
        "created_at",
        "duration_display",
    )
    list_filter = ("status", "task_type", "created_at", "processing_completed_at")
    search_fields = ("=id", "n8n_execution_id", "created_by__username", "workflow_id")
    list_select_related = ("created_by",)
    date_hierarchy = "created_at"
    raw_id_fields = ("created_by",)
    # Each action changes a task, so each needs the change permission
    # (tasks.change_asynctask): a view-only staff user is neither offered them
    # nor can POST them (Django's admin drops the actions a user may not run).
    actions = ("dispatch_again", "mark_failed", "stop")
    # Nothing of a task is edited by hand: every change goes through the
    # actions, which go through the door (forward only, versioned, recorded).
    readonly_fields = (
        *TASK_FIELDS,
        "timeline",
        "attempt_history",
        "restarted_at",
        "created_at",
        "processing_started_at",
        "processing_completed_at",
        "updated_at",
        "version",
        "attempts",
        "last_error",
        "next_attempt_at",
        "claimed_until",
        "duration_display",
        "input_pretty",
        "output_pretty",
        "error_pretty",
        "metadata_pretty",
    )
    fieldsets = (
        (
            "Task",
            {"fields": TASK_FIELDS},
        ),
        ("Timeline", {"fields": ("timeline",)}),
        (
            "Payloads",
            {"fields": ("input_pretty", "output_pretty", "error_pretty", "metadata_pretty")},
        ),
        (
            "Timing and dispatch",
            {
                "fields": (
                    "created_at",
                    "processing_started_at",
                    "processing_completed_at",
                    "duration_display",
                    "updated_at",
                    "version",
                    "restarted_at",
                    "attempts",
                    "last_error",
                    "next_attempt_at",
                    "claimed_until",
                    "attempt_history",
                )
            },
        ),
    )

    def has_add_permission(self, request):
        return False  # tasks are created by the apps that need them

    def save_model(self, request, obj, form, change):
        pass  # every field is read-only: changes are made by the actions, through the door

    @admin.action(
        description="Dispatch again (pending, failed or timed-out tasks)", permissions=["change"]
    )
    def dispatch_again(self, request, queryset):
        done = [task.pk for task in queryset if services.dispatch_again(task.pk)]
        skipped = queryset.count() - len(done)
        if done:
            self.message_user(request, f"Sent again: {len(done)} task(s).", messages.SUCCESS)
        if skipped:
            self.message_user(
                request,
                f"Left alone: {skipped} task(s) processing, completed, stopped, or "
                "superseded by a later task for the same work.",
                messages.WARNING,
            )

    @admin.action(description="Stop (unfinished tasks)", permissions=["change"])
    def stop(self, request, queryset):
        by = TaskWords.in_the_admin(request.user.get_username())
        done = 0
        for task in queryset:
            try:
                services.cancel(task.pk, by=by, source=EventSource.ADMIN)
                done += 1
            except services.TaskConflict:
                pass
        if done:
            self.message_user(request, f"Stopped: {done} task(s).", messages.SUCCESS)
        if queryset.count() - done:
            self.message_user(
                request,
                f"Left alone: {queryset.count() - done} finished task(s).",
                messages.WARNING,
            )

    @admin.action(description="Mark failed (unfinished tasks)", permissions=["change"])
    def mark_failed(self, request, queryset):
        reason = TaskWords.marked_failed_by(TaskWords.in_the_admin(request.user.get_username()))
        done = [task.pk for task in queryset if services.mark_failed(task.pk, reason)]
        skipped = queryset.count() - len(done)
        if done:
            self.message_user(request, f"Marked failed: {len(done)} task(s).", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"Left alone: {skipped} task(s) already finished.", messages.WARNING
            )

    @admin.display(description="attempt history")
    def attempt_history(self, obj):
        history = (obj.metadata or {}).get("attempts") or []
        if not isinstance(history, list) or not history:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    item.get("attempt", ""),
                    item.get("at", ""),
                    item.get("outcome", ""),
                    item.get("http_status", ""),
                    item.get("error", "") or item.get("previous_status", ""),
                )
                for item in history
                if isinstance(item, dict)
            ),
        )
        return format_html(
            "<table><thead><tr><th>#</th><th>at</th><th>outcome</th><th>HTTP</th>"
            "<th>error</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="timeline")
    def timeline(self, obj):
        events = list(obj.events.order_by("version", "id")[:500])
        if not events:
            return "—"
        rows, previous = [], None
        for event in events:
            since = f"+{(event.created_at - previous).total_seconds():.3f} s" if previous else ""
            previous = event.created_at
            rows.append(
                (
                    event.created_at.isoformat(timespec="milliseconds"),
                    since,
                    event.get_source_display(),
                    event.status,
                    event.current_step,
                    event.status_message[:300],
                )
            )
        body = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows
        )
        return format_html(
            "<table><thead><tr><th>time</th><th>since previous</th><th>source</th>"
            "<th>status</th><th>step</th><th>message</th></tr></thead><tbody>{}</tbody></table>",
            body,
        )

    @admin.display(description="duration")
    def duration_display(self, obj):
        duration = obj.duration
        return f"{duration.total_seconds():.2f} s" if duration else "—"

    @admin.display(description="input data")
    def input_pretty(self, obj):
        return pretty_json(obj.input_data)

    @admin.display(description="output data")
    def output_pretty(self, obj):
        return pretty_json(obj.output_data)

    @admin.display(description="error details")
    def error_pretty(self, obj):
        return pretty_json(obj.error_details)

    @admin.display(description="metadata (attempt history)")
    def metadata_pretty(self, obj):
        return pretty_json(obj.metadata)
