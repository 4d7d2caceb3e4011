"""Sending a message, and retrying, regenerating or editing one: each makes
the assistant reply, so all share one rate limit (`limit_sends`)."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .. import services
from ..forms import MessageForm
from ..fragments import message_html
from ..models import Conversation, Message, Role
from .common import limit_sends, message_id_param, owned, see_other, sidebar, wants_json
from .conversations import render_conversation


def _refused(request, conversation, error, status, form=None):
    if wants_json(request):
        return JsonResponse({"error": error}, status=status)
    return render_conversation(request, conversation, form=form, error=error, status=status)


def _sent(request, conversation, message, status=201):
    if wants_json(request):
        # The frame the commit published, rendered once for both.
        frame = getattr(message, "created_frame", None) or services.message_frame(
            message, bounded=False
        )
        body = {"message": frame["message"], "task": message.async_task.as_frame()}
        body["html"] = frame["html"]
        # Additive: the page shows a title derived from the first message at once.
        body["conversation"] = {"id": conversation.pk, "title": conversation.title}
        return JsonResponse(body, status=status)
    return see_other(f"{conversation.get_absolute_url()}#message-{message.pk}")


def _parent_param(request):
    """The `parent_id` a send carries (the leaf the page shows), or None."""
    value = request.POST.get("parent_id", "")
    if value == "":
        return None
    parent_id = message_id_param(value)
    if parent_id is None:
        raise services.SendRefused(services.NOT_IN_CONVERSATION, code="bad_parent", status=400)
    return parent_id


@login_required
@require_POST
@limit_sends
def message_create(request, pk):
    # Files (`files`, multipart) beside the text; a message may be files alone.
    files = request.FILES.getlist("files")
    form = MessageForm(request.POST, with_files=bool(files))
    if not form.is_valid():
        error = form.errors["content"][0]
        return _refused(request, owned(request, pk), error, 400, form=form)
    # The send's own locked read checks the owner (one statement fewer than
    # reading the conversation first): anyone else's or no conversation is 404.
    conversation = Conversation(pk=pk, user=request.user)
    try:
        parent_id = _parent_param(request)
        message = services.send_message(
            request.user,
            conversation,
            form.cleaned_data["content"],
            parent_id=parent_id,
            files=files,
        )
    except Conversation.DoesNotExist:
        raise Http404 from None
    except services.SendRefused as refused:
        conversation = owned(request, pk)
        return _refused(request, conversation, refused.message, refused.status, form=form)
    return _sent(request, conversation, message)


@login_required
@require_GET
@never_cache
def message_fragment(request, pk, message_id):
    """One message's fragment, as the page renders it: what a page fetches for
    a `message.created` frame too large to carry it (`too_large`). The
    conversation's owner only; 404 for anyone else."""
    conversation = owned(request, pk)
    if message_id_param(message_id) is None:
        raise Http404
    message = get_object_or_404(
        Message.objects.filter(conversation=conversation).select_related("async_task"),
        pk=message_id,
    )
    return HttpResponse(message_html(message, request), content_type="text/html; charset=utf-8")


def _ask_again(request, pk, message_id, role, ask):
    """Retry and regenerate: `ask(message)` for one of the conversation's
    messages of `role`, answered like a send."""
    conversation = owned(request, pk)
    message = get_object_or_404(
        Message.objects.filter(conversation=conversation, role=role), pk=message_id
    )
    try:
        asked = ask(conversation, message)
    except services.SendRefused as refused:
        return _refused(request, conversation, refused.message, refused.status)
    return _sent(request, conversation, asked)


@login_required
@require_POST
@limit_sends
def message_retry(request, pk, message_id):
    def ask(_conversation, message):
        return services.retry(request.user, message)

    return _ask_again(request, pk, message_id, Role.USER, ask)


@login_required
@require_POST
@limit_sends
def message_regenerate(request, pk, message_id):
    """A new reply to the user message an assistant message answers."""

    def ask(conversation, reply):
        return services.regenerate(request.user, conversation, reply)

    return _ask_again(request, pk, message_id, Role.ASSISTANT, ask)


@login_required
@require_http_methods(["GET", "POST"])
@limit_sends
def message_edit(request, pk, message_id):
    """POST `content`: a new version of a user message (its sibling) and its
    reply. GET: a small page with the form (the page's no-JS fallback)."""
    conversation = owned(request, pk)
    original = get_object_or_404(
        Message.objects.filter(conversation=conversation, role=Role.USER), pk=message_id
    )
    if request.method == "GET":
        form = MessageForm(initial={"content": original.content})
        return _render_edit(request, conversation, original, form)
    form = MessageForm(request.POST)
    if not form.is_valid():
        error = form.errors["content"][0]
        if wants_json(request):
            return JsonResponse({"error": error}, status=400)
        return _render_edit(request, conversation, original, form, error, status=400)
    try:
        message = services.edit(request.user, conversation, original, form.cleaned_data["content"])
    except services.SendRefused as refused:
        if wants_json(request):
            return JsonResponse({"error": refused.message}, status=refused.status)
        return _render_edit(request, conversation, original, form, refused.message, refused.status)
    return _sent(request, conversation, message)


def _render_edit(request, conversation, original, form, error="", status=200):
    context = {
        "conversation": conversation,
        "original": original,
        "form": form,
        "error": error,
        "max_length": settings.CHAT_MESSAGE_MAX_LENGTH,
        "sidebar": sidebar(request),
    }
    return render(request, "chat/edit.html", context, status=status)
