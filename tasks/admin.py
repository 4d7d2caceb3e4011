import json

from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from . import services
from .models import AsyncTask


def pretty_json(value):
    if value in (None, "", {}):
        return "—"
    return format_html(
        '<pre style="white-space:pre-wrap;margin:0">{}</pre>',
        json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True),
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
    actions = ("dispatch_again", "mark_failed")
    readonly_fields = (
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
            None,
            {
                "fields": (
                    "task_type",
                    "workflow_id",
                    "created_by",
                    "status",
                    "current_step",
                    "status_message",
                    "n8n_execution_id",
                )
            },
        ),
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

    @admin.action(description="Dispatch again (pending, failed or timed-out tasks)")
    def dispatch_again(self, request, queryset):
        done = [task.pk for task in queryset if services.dispatch_again(task.pk)]
        skipped = queryset.count() - len(done)
        if done:
            self.message_user(request, f"Sent again: {len(done)} task(s).", messages.SUCCESS)
        if skipped:
            self.message_user(
                request,
                f"Left alone: {skipped} task(s) processing or completed.",
                messages.WARNING,
            )

    @admin.action(description="Mark failed (unfinished tasks)")
    def mark_failed(self, request, queryset):
        reason = f"Marked failed by {request.user.get_username()} in the admin."
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
