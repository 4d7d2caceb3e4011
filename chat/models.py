"""Conversations and their messages (`chat_conversations`, `chat_messages`)."""

from django.conf import settings
from django.db import models
from django.db.models import Q, Value
from django.db.models.functions import Now
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property

from tasks.models import AsyncTask

from .rendering import PREVIEW_LENGTH


def _json_default():
    return Value({}, output_field=models.JSONField())


class ConversationQuerySet(models.QuerySet):
    def for_user(self, user):
        """Every chat queryset starts here: users only ever see their own rows."""
        if not user.is_authenticated:
            return self.none()
        return self.filter(user=user)

    def active(self):
        return self.filter(is_archived=False)

    def archived(self):
        return self.filter(is_archived=True)

    def with_preview(self, length=PREVIEW_LENGTH):
        """Annotate the start of each conversation's last message (one query, no N+1).

        The stored plain-text preview; a row written without one (plain SQL)
        shows the start of its content until it is rendered.
        """
        from django.db.models import OuterRef, Subquery
        from django.db.models.functions import Coalesce, NullIf, Substr

        latest = Message.objects.filter(conversation=OuterRef("pk")).order_by("-created_at", "-id")
        start = Coalesce(
            NullIf("preview_text", Value("")),
            Substr("content", 1, length),
            output_field=models.TextField(),
        )
        return self.annotate(
            last_message_preview=Subquery(latest.annotate(start=start).values("start")[:1]),
            last_message_role=Subquery(latest.values("role")[:1]),
        )


INSTRUCTIONS_MAX_LENGTH = 4000


class AssistantQuerySet(models.QuerySet):
    def active(self):
        return self.filter(is_active=True)


class Assistant(models.Model):
    """An n8n workflow people can chat with (`chat_assistants`): found by
    `n8n_setup` among the workflows tagged `chat`, or added in the admin."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True, default="", db_default="")
    # The webhook path dispatches go to (`/webhook/{workflow_id}`).
    workflow_id = models.CharField(max_length=255)
    # n8n's own id of the workflow when discovery made or updated this row.
    n8n_workflow_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    streams = models.BooleanField(default=False, db_default=False)
    is_active = models.BooleanField(default=True, db_default=True)
    is_default = models.BooleanField(default=False, db_default=False)
    created_at = models.DateTimeField(default=timezone.now, db_default=Now(), editable=False)
    updated_at = models.DateTimeField(auto_now=True, db_default=Now())

    objects = AssistantQuerySet.as_manager()

    class Meta:
        db_table = "chat_assistants"
        ordering = ["-is_default", "name", "id"]
        constraints = [
            # At most one default, whatever writes the table (admin, SQL, discovery).
            models.UniqueConstraint(
                fields=["is_default"],
                condition=Q(is_default=True),
                name="chat_assistants_one_default",
            ),
        ]

    def __str__(self):
        return self.name

    def as_input(self) -> dict:
        """What a task's input and a reply's metadata say about it."""
        return {"id": self.pk, "name": self.name}


class Conversation(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.TextField(blank=True, default="", db_default="")
    created_at = models.DateTimeField(default=timezone.now, db_default=Now(), editable=False)
    updated_at = models.DateTimeField(auto_now=True, db_default=Now())
    is_archived = models.BooleanField(default=False, db_default=False)
    metadata = models.JSONField(default=dict, db_default=_json_default(), blank=True)
    # The leaf of the branch the page shows by default, set by the last send,
    # edit, regenerate or reply. A plain id, not a foreign key: a stale or
    # foreign value is ignored and the newest message is taken instead.
    current_leaf_id = models.BigIntegerField(null=True, blank=True, editable=False)
    # Who answers: null is the default assistant (or N8N_CHAT_WORKFLOW when
    # there is none); an assistant deleted in the admin sends its
    # conversations back to the default.
    assistant = models.ForeignKey(
        Assistant,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="conversations",
    )
    # Sent with every reply request of the conversation (`input.instructions`);
    # empty means the user's default (accounts' settings page).
    instructions = models.TextField(
        blank=True, default="", db_default="", max_length=INSTRUCTIONS_MAX_LENGTH
    )

    objects = ConversationQuerySet.as_manager()

    class Meta:
        db_table = "chat_conversations"
        ordering = ["-updated_at", "-id"]
        indexes = [
            models.Index(fields=["user", "updated_at"], name="chat_conv_user_updated"),
        ]

    def __str__(self):
        return self.title or f"Conversation {self.pk}"

    def get_absolute_url(self):
        return reverse("chat:conversation", args=[self.pk])

    def touch(self):
        """Move `updated_at` forward (a new message counts as activity)."""
        now = timezone.now()
        Conversation.objects.filter(pk=self.pk).update(updated_at=now)
        self.updated_at = now


class Role(models.TextChoices):
    USER = "user", "User"
    ASSISTANT = "assistant", "Assistant"


class Message(models.Model):
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    role = models.CharField(max_length=16, choices=Role.choices, db_default=Role.USER.value)
    content = models.TextField(db_default="")
    thinking = models.TextField(blank=True, default="", db_default="")
    created_at = models.DateTimeField(default=timezone.now, db_default=Now(), editable=False)
    metadata = models.JSONField(default=dict, db_default=_json_default(), blank=True)
    # The message this one follows (null for a first message): a conversation
    # is a tree and the page shows one branch of it. SET_NULL, not CASCADE:
    # deleting one message (the admin) never takes the replies under it along;
    # they start a branch of their own. A whole conversation still goes at once.
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="children",
    )
    async_task = models.ForeignKey(
        AsyncTask,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="messages",
    )
    # Rendered once when the message is stored (assistant replies: sanitized
    # HTML of `content` and `thinking`), so pages and frames never render
    # Markdown. Empty means "not rendered yet": a row inserted with plain SQL
    # is rendered the first time it is shown (a text that renders to nothing
    # stores `rendering.NOTHING_TO_SHOW`, so it is rendered once too); `manage.py rerender_messages`
    # renders them all again after a renderer upgrade.
    content_html = models.TextField(blank=True, default="", db_default="", editable=False)
    thinking_html = models.TextField(blank=True, default="", db_default="", editable=False)
    # The start of the message as one line of plain text (the sidebar).
    preview_text = models.TextField(blank=True, default="", db_default="", editable=False)

    class Meta:
        db_table = "chat_messages"
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["conversation", "created_at"], name="chat_msg_conv_created"),
            # Siblings (same parent, or the roots of one conversation).
            models.Index(fields=["conversation", "parent"], name="chat_msg_conv_parent"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(role__in=Role.values), name="chat_messages_role_valid"
            ),
        ]

    def __str__(self):
        return f"{self.role}: {self.content[:40]}"

    def get_absolute_url(self):
        return f"{self.conversation.get_absolute_url()}#message-{self.pk}"

    @property
    def needs_render(self) -> bool:
        if self.role != Role.ASSISTANT:
            return not self.preview_text and bool(self.content)
        return bool(
            (self.content and not self.content_html) or (self.thinking and not self.thinking_html)
        )

    def render(self) -> list[str]:
        """Fill the stored HTML and preview from the text (rendered now, or
        before the transaction by `rendering.prepare`); the fields it set."""
        from .rendering import stored_fields

        fields = stored_fields(self.role, self.content, self.thinking)
        for name, value in fields.items():
            setattr(self, name, value)
        return list(fields)

    @classmethod
    def render_missing(cls, messages) -> None:
        """`render_if_needed` for a page of messages, in one query."""
        from .rendering import FIELDS

        missing = [m for m in messages if m.pk and m.needs_render]
        for message in missing:
            message.render()
        if missing:
            cls.objects.bulk_update(missing, FIELDS)

    @cached_property
    def files(self) -> list:
        """The message's attachments (prefetched on pages; set by whoever
        just stored them, so a new message's fragment costs no query)."""
        return list(self.attachments.all())

    def render_if_needed(self) -> None:
        """Render and store a row that was written without its HTML (plain SQL,
        or stored before the column existed): once, then it is kept."""
        if self.pk and self.needs_render:
            fields = {name: getattr(self, name) for name in self.render()}
            Message.objects.filter(pk=self.pk).update(**fields)

    def save(self, *args, touch_conversation=True, **kwargs):
        """A new message is activity: it moves its conversation's `updated_at`
        (unless the caller just did, `touch_conversation=False`).

        Its HTML and preview are rendered here whenever the text is saved, in
        the transaction that stores it, unless `rendering.prepare` rendered
        them before (a task's reply: see chat/rendering.py).
        """
        adding = self._state.adding
        if adding and self.parent_id is None and not getattr(self, "starts_branch", False):
            # Written without a parent by code that knows nothing of branches
            # (the admin, scripts, tests): it follows the branch the page shows.
            from .branches import default_leaf_id

            self.parent_id = default_leaf_id(self.conversation_id)
        update_fields = kwargs.get("update_fields")
        if update_fields is None:
            self.render()
        elif {"content", "thinking", "role"} & set(update_fields):
            kwargs["update_fields"] = {*update_fields, *self.render()}
        super().save(*args, **kwargs)
        if adding and touch_conversation:
            Conversation(pk=self.conversation_id).touch()


# Images a browser shows and Pillow reads: the only files served inline, and
# the ones a page shows as thumbnails. Never SVG or anything scriptable.
RASTER_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"})


class AttachmentQuerySet(models.QuerySet):
    def for_user(self, user):
        """Files are their owner's only: every lookup by id starts here."""
        if not user.is_authenticated:
            return self.none()
        return self.filter(user=user)


class Attachment(models.Model):
    """A file sent with a message (`chat_attachments`): the user's upload or a
    file a workflow returned with its reply. The bytes live in Django's default
    storage under `file` (a random name, never the user's); `name` is what the
    user called it. Deleting the row deletes the stored file after the commit
    (chat/files/store.py), however the row goes (a conversation, a user)."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attachments"
    )
    file = models.CharField(max_length=255, unique=True)
    name = models.CharField(max_length=255)
    content_type = models.CharField(max_length=127)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now, db_default=Now(), editable=False)

    objects = AttachmentQuerySet.as_manager()

    class Meta:
        db_table = "chat_attachments"
        ordering = ["id"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("files:file", args=[self.pk])

    @property
    def is_image(self) -> bool:
        """A raster image a browser shows: inline, with a thumbnail."""
        return self.content_type in RASTER_IMAGES


class ShareQuerySet(models.QuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True)


class Share(models.Model):
    """A read-only link to a snapshot of one branch (`/s/{token}/`): the branch
    ending at `last_message`, as it was when shared; later messages never
    appear. Deleted with its conversation; `revoked_at` turns it off."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="shares")
    token = models.CharField(max_length=64, unique=True, editable=False)
    # SET_NULL: a message deleted in the admin leaves a link that shows nothing (404).
    last_message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_default=Now(), editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ShareQuerySet.as_manager()

    class Meta:
        db_table = "chat_shares"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["conversation", "revoked_at"], name="chat_share_conv_revoked"),
        ]

    def __str__(self):
        return f"Share {self.pk} of conversation {self.conversation_id}"

    def get_absolute_url(self):
        return reverse("shared", args=[self.token])

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
