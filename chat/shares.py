"""Share links: a read-only snapshot of one branch at `/s/{token}/`.

A link names the conversation and the last message of the branch it shows
(`last_message`): the branch is walked up from there, so messages written
later, on this branch or any other, never appear. Sharing the same branch
again while its link is on gives the same link. Revoking turns every link of
the conversation off; deleting the conversation deletes them (CASCADE).
"""

import re
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

# 32 random bytes, URL-safe base64: 43 characters, 256 bits.
TOKEN_BYTES = 32
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{20,64}")
NOT_IN_CONVERSATION = "That message is not part of this conversation."


class ShareRefused(Exception):
    """Plain words for the owner, and the HTTP status that says why."""

    def __init__(self, message, status):
        super().__init__(message)
        self.message = message
        self.status = status


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def share(user, conversation, leaf_id=None):
    """The active link to the branch ending at `leaf_id` (a message of the
    conversation; without it, the branch its page shows by default), made now
    unless that branch has one already. ShareRefused when `leaf_id` is not a
    message of the conversation, there is nothing to share, or a count limit
    is reached."""
    from .branches import default_leaf_id
    from .models import Conversation, Message, Share

    with transaction.atomic():
        # Serialised per conversation, so two clicks cannot pass the count together.
        locked = Conversation.objects.for_user(user).select_for_update().filter(pk=conversation.pk)
        if not locked.exists():
            raise Conversation.DoesNotExist
        if leaf_id is not None:
            last_id = (
                Message.objects.filter(conversation=conversation, pk=leaf_id)
                .values_list("pk", flat=True)
                .first()
            )
            if last_id is None:
                raise ShareRefused(NOT_IN_CONVERSATION, 404)
        else:
            last_id = default_leaf_id(conversation.pk)
        if last_id is None:
            raise ShareRefused("There is nothing to share yet: write a message first.", 400)
        active = Share.objects.active()
        existing = active.filter(conversation=conversation, last_message_id=last_id).first()
        if existing is not None:
            return existing
        if active.filter(conversation=conversation).count() >= settings.SHARE_MAX_PER_CONVERSATION:
            raise ShareRefused(
                "This conversation has as many shared links as it may have: "
                "turn them off before sharing it again.",
                409,
            )
        if active.filter(conversation__user=user).count() >= settings.SHARE_MAX_PER_USER:
            raise ShareRefused(
                "You have as many shared links as you may have: "
                "turn some off before sharing again.",
                409,
            )
        return Share.objects.create(
            conversation=conversation, token=new_token(), last_message_id=last_id
        )


def revoke(user, conversation) -> int:
    """Turn every active link of the user's conversation off; how many were on."""
    from .models import Share

    return (
        Share.objects.active()
        .filter(conversation__user=user, conversation=conversation)
        .update(revoked_at=timezone.now())
    )


def find(token):
    """The active share with this token (with its conversation), or None."""
    from .models import Share

    if not isinstance(token, str) or not TOKEN_PATTERN.fullmatch(token):
        return None
    return (
        Share.objects.active()
        .select_related("conversation")
        .filter(token=token, last_message__isnull=False)
        .first()
    )


@dataclass
class Snapshot:
    messages: list
    has_earlier: bool


def snapshot(share_row) -> Snapshot:
    """The shared branch, oldest first: at most SHARE_MAX_MESSAGES of it, the
    latest ones, rendered (a row written without its HTML is rendered once)."""
    from . import branches
    from .models import Message

    size = settings.SHARE_MAX_MESSAGES
    queryset = branches.branch_queryset(
        Message.objects.all(),
        share_row.conversation_id,
        leaf_id=share_row.last_message_id,
        rows=size + 1,
    )
    rows = list(queryset.order_by("-created_at", "-id"))
    page = rows[:size]
    page.reverse()
    Message.render_missing(page)
    for message in page:
        message.versions = None  # a shared page shows one branch, without switches
    return Snapshot(messages=page, has_earlier=len(rows) > size)
