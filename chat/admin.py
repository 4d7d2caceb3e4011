from django.contrib import admin
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from tasks.admin import pretty_json

from .models import Conversation, Message


def _link(obj, label=None):
    if obj is None:
        return "—"
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, label or str(obj))


# The change page of a conversation lists only its newest messages, as links:
# an inline form of every message made a 5,000-message conversation's page
# 23 MB, too big to render or save. The rest is one click away, filtered.
RECENT_MESSAGES = 20
PREVIEW_CHARS = 200


def _preview(text):
    text = " ".join((text or "").split())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "title",
        "user",
        "message_count",
        "is_archived",
        "created_at",
        "updated_at",
    )
    list_filter = ("is_archived", "created_at", "updated_at")
    search_fields = ("title", "user__username", "messages__content")
    list_select_related = ("user",)
    date_hierarchy = "updated_at"
    raw_id_fields = ("user",)
    readonly_fields = ("created_at", "updated_at", "metadata_pretty", "recent_messages")
    fields = (
        "user",
        "title",
        "is_archived",
        "metadata",
        "metadata_pretty",
        "created_at",
        "updated_at",
        "recent_messages",
    )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_message_count=Count("messages"))

    def get_search_results(self, request, queryset, search_term):
        queryset, _ = super().get_search_results(request, queryset, search_term)
        return queryset.distinct(), False

    @admin.display(description="messages", ordering="_message_count")
    def message_count(self, obj):
        return obj._message_count

    @admin.display(description="metadata")
    def metadata_pretty(self, obj):
        return pretty_json(obj.metadata)

    @admin.display(description="messages")
    def recent_messages(self, obj):
        if obj.pk is None:
            return "—"
        newest = list(
            Message.objects.filter(conversation=obj)
            .select_related("async_task")
            .order_by("-created_at", "-id")[:RECENT_MESSAGES]
        )
        total = Message.objects.filter(conversation=obj).count()
        every = reverse("admin:chat_message_changelist") + f"?conversation__id__exact={obj.pk}"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (_link(m, f"#{m.pk}"), m.role, _preview(m.content), _link(m.async_task))
                for m in reversed(newest)
            ),
        )
        return format_html(
            '<p>The newest {} of {} (<a href="{}">all messages of this conversation</a>)</p>'
            "<table><thead><tr><th>message</th><th>role</th><th>content</th><th>task</th>"
            "</tr></thead><tbody>{}</tbody></table>",
            len(newest),
            total,
            every,
            rows,
        )


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "role", "short_content", "conversation_link", "task_link", "created_at")
    list_filter = ("role", "created_at")
    list_per_page = 50
    search_fields = ("content", "conversation__title", "conversation__user__username")
    list_select_related = ("conversation", "async_task")
    date_hierarchy = "created_at"
    raw_id_fields = ("conversation", "parent", "async_task")
    readonly_fields = ("created_at", "conversation_link", "task_link", "metadata_pretty")

    @admin.display(description="content")
    def short_content(self, obj):
        return _preview(obj.content)[:80]

    @admin.display(description="conversation")
    def conversation_link(self, obj):
        return _link(obj.conversation)

    @admin.display(description="task")
    def task_link(self, obj):
        return _link(obj.async_task)

    @admin.display(description="metadata")
    def metadata_pretty(self, obj):
        return pretty_json(obj.metadata)
