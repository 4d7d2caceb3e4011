"""Share links: make one (`POST /chat/{id}/share/`), turn a conversation's
off (`POST /chat/{id}/share/revoke/`), and the shared page (`GET /s/{token}/`,
no login)."""

from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts.limits import rate_limited

from .. import shares
from ..models import Conversation
from .common import message_id_param, owned, see_other, wants_json
from .conversations import render_conversation

ROBOTS = "noindex, nofollow, noarchive"


def _share_json(request, share):
    return {
        "url": request.build_absolute_uri(share.get_absolute_url()),
        "token": share.token,
        "last_message_id": share.last_message_id,
        "created_at": share.created_at.isoformat(),
    }


@login_required
@require_POST
@rate_limited("chat.share", "SHARE_RATE_LIMIT")
def conversation_share(request, pk):
    """The branch the page shows (`leaf`, else the default one) as a link."""
    conversation = owned(request, pk)
    leaf = request.POST.get("leaf", "")
    leaf_id = message_id_param(leaf) if leaf else None
    if leaf and leaf_id is None:
        raise Http404("no such message")
    try:
        share = shares.share(request.user, conversation, leaf_id=leaf_id)
    except shares.ShareRefused as refused:
        if wants_json(request):
            return JsonResponse({"error": refused.message}, status=refused.status)
        return render_conversation(
            request, conversation, error=refused.message, status=refused.status
        )
    except Conversation.DoesNotExist as gone:
        raise Http404 from gone
    if wants_json(request):
        return JsonResponse({"share": _share_json(request, share)}, status=201)
    url = request.build_absolute_uri(share.get_absolute_url())
    flash.success(request, f"Anyone with this link can read this conversation: {url}")
    return see_other(conversation.get_absolute_url())


@login_required
@require_POST
def conversation_share_revoke(request, pk):
    conversation = owned(request, pk)
    count = shares.revoke(request.user, conversation)
    if wants_json(request):
        return JsonResponse({"revoked": count})
    if count:
        flash.success(request, "Shared links of this conversation are turned off.")
    else:
        flash.info(request, "This conversation had no shared link.")
    return see_other(conversation.get_absolute_url())


@require_GET
@never_cache
def shared_conversation(request, token):
    share = shares.find(token)
    if share is None:
        raise Http404("no such link")
    snapshot = shares.snapshot(share)
    context = {
        "share": share,
        "conversation": share.conversation,
        "chat_messages": snapshot.messages,
        "has_earlier": snapshot.has_earlier,
    }
    response = render(request, "chat/shared.html", context)
    response["X-Robots-Tag"] = ROBOTS
    return response
