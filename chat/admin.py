from django.contrib import admin
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from tasks.admin import pretty_json

from .models import Assistant, Attachment, Conversation, Message, Share
from .search import query as finder
from .search import sql
from .views.common import MAX_ID


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


def _id(term):
    """The term as an id a bigint can hold, or None."""
    return int(term) if term.isdigit() and int(term) <= MAX_ID else None


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
    # Searched where it is cheap: titles and usernames (a number also finds
    # that id, by the primary key: get_search_results). Searching message
    # content through a join (with DISTINCT to drop the duplicates) took
    # 74.5 s on a large table; messages are searched in their own list, on
    # the full-text index.
    search_fields = ("title", "user__username")
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
        # A count per row (the conversation index), not a join of every
        # message grouped by conversation.
        count = (
            Message.objects.filter(conversation=OuterRef("pk"))
            .order_by()
            .values("conversation")
            .annotate(n=Count("*"))
            .values("n")
        )
        return super().get_queryset(request).annotate(_message_count=Coalesce(Subquery(count), 0))

    def get_search_results(self, request, queryset, search_term):
        term = finder.normalize(search_term)
        found, _ = super().get_search_results(request, queryset, term)
        number = _id(term)
        if number is not None:
            found = queryset.filter(Q(pk=number) | Q(pk__in=found.values("pk")))
        return found, False

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


class AttachmentInline(admin.TabularInline):
    """A message's files, read-only: names, types, sizes and hashes, never
    their content (the file itself is its owner's, at /files/{id}/)."""

    model = Attachment
    extra = 0
    can_delete = False
    fields = ("id", "name", "content_type", "size", "sha256", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    inlines = (AttachmentInline,)
    list_display = ("id", "role", "short_content", "conversation_link", "task_link", "created_at")
    list_filter = ("role", "created_at")
    list_per_page = 50
    # All three by get_search_results: a number finds that message or that
    # conversation's messages (by their indexes); words go to the full-text
    # index, never `LIKE` over every message's content (1.7-3.2 s on
    # 100,000 messages).
    search_fields = ("id", "conversation__id", "content")
    list_select_related = ("conversation", "async_task")
    date_hierarchy = "created_at"
    raw_id_fields = ("conversation", "parent", "async_task")
    readonly_fields = ("created_at", "conversation_link", "task_link", "metadata_pretty")

    def get_search_results(self, request, queryset, search_term):
        term = finder.normalize(search_term)
        if not term:
            return queryset, False
        number = _id(term)
        if number is not None:
            return queryset.filter(Q(pk=number) | Q(conversation_id=number)), False
        matching = sql.matching_message_ids(term)
        if matching is None:
            return queryset.none(), False
        return queryset.filter(pk__in=RawSQL(*matching)), False

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


@admin.register(Share)
class ShareAdmin(admin.ModelAdmin):
    """Share links: who shared what and whether it is on; an admin may turn
    links off (never on again, nor make one: that is the owner's)."""

    list_display = ("id", "conversation_link", "created_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    list_select_related = ("conversation",)
    ordering = ("-id",)
    fields = ("conversation_link", "last_message_id", "created_at", "revoked_at")
    readonly_fields = fields
    actions = ["turn_off"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="conversation")
    def conversation_link(self, obj):
        return _link(obj.conversation)

    @admin.action(description="Turn the selected links off", permissions=["change"])
    def turn_off(self, request, queryset):
        from django.utils import timezone

        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"{count} link(s) turned off.")


@admin.register(Assistant)
class AssistantAdmin(admin.ModelAdmin):
    """Assistants: found by `n8n_setup` among the n8n workflows tagged `chat`,
    or added here by hand (`n8n_workflow_id` empty). The database allows one
    default at most: marking another one default here unmarks the old one."""

    list_display = (
        "name",
        "workflow_id",
        "is_active",
        "is_default",
        "streams",
        "n8n_workflow_id",
        "updated_at",
    )
    list_filter = ("is_active", "is_default", "streams")
    search_fields = ("name", "workflow_id", "=n8n_workflow_id")
    readonly_fields = ("created_at", "updated_at")
    fields = (
        "name",
        "description",
        "workflow_id",
        "n8n_workflow_id",
        "streams",
        "is_active",
        "is_default",
        "created_at",
        "updated_at",
    )

    def save_model(self, request, obj, form, change):
        from django.db import transaction

        with transaction.atomic():
            if obj.is_default:
                # One default at most (chat_assistants_one_default): the old one steps down.
                Assistant.objects.filter(is_default=True).exclude(pk=obj.pk).update(
                    is_default=False
                )
            super().save_model(request, obj, form, change)
