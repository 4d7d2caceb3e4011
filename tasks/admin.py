import json

from django.contrib import admin
from django.utils.html import format_html

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
    readonly_fields = (
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
                    "attempts",
                    "last_error",
                    "next_attempt_at",
                    "claimed_until",
                )
            },
        ),
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
