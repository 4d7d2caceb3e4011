"""Conversations and their messages (`chat_conversations`, `chat_messages`)."""

from django.conf import settings
from django.db import models
from django.db.models import Q, Value
from django.db.models.functions import Now
from django.urls import reverse
from django.utils import timezone

from tasks.models import AsyncTask


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

    def with_preview(self, length=160):
        """Annotate the start of each conversation's last message (one query, no N+1)."""
        from django.db.models import OuterRef, Subquery
        from django.db.models.functions import Substr

        latest = Message.objects.filter(conversation=OuterRef("pk")).order_by("-created_at", "-id")
        return self.annotate(
            last_message_preview=Subquery(
                latest.annotate(start=Substr("content", 1, length)).values("start")[:1]
            ),
            last_message_role=Subquery(latest.values("role")[:1]),
        )


class Conversation(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.TextField(blank=True, default="", db_default="")
    created_at = models.DateTimeField(default=timezone.now, db_default=Now(), editable=False)
    updated_at = models.DateTimeField(auto_now=True, db_default=Now())
    is_archived = models.BooleanField(default=False, db_default=False)
    metadata = models.JSONField(default=dict, db_default=_json_default(), blank=True)

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
    async_task = models.ForeignKey(
        AsyncTask,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="messages",
    )

    class Meta:
        db_table = "chat_messages"
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["conversation", "created_at"], name="chat_msg_conv_created"),
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

    def save(self, *args, touch_conversation=True, **kwargs):
        """A new message is activity: it moves its conversation's `updated_at`
        (unless the caller just did, `touch_conversation=False`)."""
        adding = self._state.adding
        super().save(*args, **kwargs)
        if adding and touch_conversation:
            Conversation(pk=self.conversation_id).touch()
