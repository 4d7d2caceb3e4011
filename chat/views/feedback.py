"""Rating a reply: `POST /chat/{id}/messages/{message_id}/feedback/` (and GET:
the page with the comment box, the rating buttons' companion)."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_http_methods

from accounts.limits import rate_limited

from ..fragments import message_html
from ..models import Message, Role
from ..replies import feedback
from .common import message_id_param, owned, see_other, sidebar, wants_json


@login_required
@require_http_methods(["GET", "POST"])
@rate_limited("chat.feedback", "FEEDBACK_RATE_LIMIT")
def message_feedback(request, pk, message_id):
    """POST `rating` (up, down, none) and an optional `comment` on one of the
    owner's assistant replies (without a `comment` field the earlier comment
    stays); 404 for any other message. JSON answers `{"message_id",
    "feedback", "task", "html"}`; a form post goes back to the reply."""
    conversation = owned(request, pk)
    if message_id_param(message_id) is None:
        raise Http404
    reply = get_object_or_404(
        Message.objects.filter(conversation=conversation, role=Role.ASSISTANT), pk=message_id
    )
    if request.method == "GET":
        return _render_form(request, conversation, reply)
    rating = request.POST.get("rating", "")
    comment = request.POST.get("comment")
    try:
        reply, task = feedback.rate(request.user, reply, rating, comment)
    except feedback.FeedbackRefused as refused:
        if wants_json(request):
            return JsonResponse({"error": refused.message}, status=400)
        return _render_form(request, conversation, reply, rating, comment, refused.message, 400)
    if wants_json(request):
        return JsonResponse(
            {
                "message_id": reply.pk,
                "feedback": reply.metadata["feedback"],
                "task": task.as_frame() if task is not None else None,
                "html": message_html(reply, request),
            }
        )
    return see_other(f"{conversation.get_absolute_url()}?leaf={reply.pk}#message-{reply.pk}")


def _render_form(request, conversation, reply, rating=None, comment=None, error="", status=200):
    stored = (reply.metadata or {}).get("feedback") or {}
    context = {
        "conversation": conversation,
        "reply": reply,
        "rating": rating if rating is not None else stored.get("rating", "none"),
        "comment": comment if comment is not None else stored.get("comment", ""),
        "error": error,
        "max_length": feedback.COMMENT_MAX_LENGTH,
        "sidebar": sidebar(request),
    }
    return render(request, "chat/feedback.html", context, status=status)
