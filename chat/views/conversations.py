"""The conversation list, a new conversation, a conversation's page (the
branch it shows), and renaming, archiving and deleting one."""

from django.conf import settings
from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.limits import check, rate_limited, too_many

from .. import assistants, services
from ..forms import InstructionsForm, MessageForm, NewConversationForm, RenameForm, assistant_field
from ..models import Conversation, Message
from .common import (
    SEND_LIMIT_GROUP,
    leaf_param,
    message_id_param,
    owned,
    see_other,
    sidebar,
    wants_json,
)


@login_required
@require_GET
def conversation_list(request):
    archived = request.GET.get("archived") == "1"
    return _render_list(request, NewConversationForm(), archived=archived)


def _render_list(request, form, archived=False, status=200):
    context = {"form": form, "sidebar": sidebar(request, archived=archived)}
    return render(request, "chat/index.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
@rate_limited("chat.conversation", "CONVERSATION_RATE_LIMIT")
def conversation_new(request):
    """GET: an empty composer, nothing stored; POST: create (optional title and content)."""
    if request.method == "GET":
        return _render_new(request, NewConversationForm())
    if request.POST.get("content", "").strip():
        # A first message is a send like any other.
        refusal = check(request, SEND_LIMIT_GROUP, settings.CHAT_RATE_LIMIT)
        if refusal is not None:
            return _refused_first_send(request, refusal)
    form = NewConversationForm(request.POST)
    if not form.is_valid():
        if "title" not in request.POST:
            # From the new-conversation composer (it has no title field): say
            # why there, with the text kept in the box.
            error = (form.errors.get("content") or form.errors.get("assistant") or [""])[0]
            return _render_new(request, form, error=error, status=400)
        return _render_list(request, form, status=400)
    title = form.cleaned_data["title"].strip()
    content = form.cleaned_data["content"]
    with transaction.atomic():
        conversation = Conversation.objects.create(
            user=request.user, title=title, assistant=form.cleaned_data.get("assistant")
        )
        if content:
            services.send_message(request.user, conversation, content)
    return see_other(conversation.get_absolute_url())


def _refused_first_send(request, refusal):
    """A first message past the send limit: 429 with the page it came from,
    its text kept in the box and the refusal's words beside it (a bare 429
    page lost the text when its reader went back to the app)."""
    if "application/json" in request.headers.get("Accept", ""):
        return too_many(request, refusal)
    if "title" not in request.POST:
        response = _render_new(
            request, MessageForm(request.POST), error=refusal.message, status=429
        )
    else:
        form = NewConversationForm(request.POST)
        form.is_valid()
        form.add_error(None, refusal.message)
        response = _render_list(request, form, status=429)
    response["Retry-After"] = str(refusal.retry_after)
    return response


def _render_new(request, form, error="", status=200):
    context = {
        "form": form,
        "composer_error": error,
        "max_length": settings.CHAT_MESSAGE_MAX_LENGTH,
        "new_conversation": True,
        "sidebar": sidebar(request),
    }
    return render(request, "chat/new.html", context, status=status)


def _page_of_messages(conversation, before_id, leaf_id):
    """The latest CHAT_PAGE_SIZE messages of the branch the page shows (or
    those above `before_id` on it), oldest first, with their `‹ i / n ›`.

    Two queries whatever the tree's size (chat/branches.py); the tasks come
    with the messages. A `leaf_id` that is not a message of the conversation
    is a 404; a `before_id` that is not is ignored.
    """
    from django.db.models import OuterRef, Subquery

    from .. import branches

    size = settings.CHAT_PAGE_SIZE
    anchor = None
    if before_id:
        anchor = Message.objects.filter(conversation=conversation, pk=before_id).first()
    newest = Message.objects.filter(conversation=OuterRef("conversation_id")).order_by(
        "-created_at", "-id"
    )
    queryset = (
        Message.objects.select_related("async_task")
        # The replies' "Details" and every message's files, one query each.
        .prefetch_related("async_task__events", "attachments")
        .annotate(newest_id=Subquery(newest.values("pk")[:1]))
    )
    queryset = branches.branch_queryset(
        queryset,
        conversation.pk,
        leaf_id=None if anchor else leaf_id,
        above_id=anchor.pk if anchor else None,
        rows=size + 1,
    )
    rows = list(queryset.order_by("-created_at", "-id"))
    if leaf_id and not anchor and not rows:
        raise Http404("no such message")
    page = rows[:size]
    page.reverse()
    Message.render_missing(page)
    branches.annotate(page)
    newest_id = rows[0].newest_id if rows else None
    return page, len(rows) > size, anchor is not None, newest_id


def _assistant_context(conversation, instructions_form=None):
    """The conversation's assistant controls: the select (preset to who
    answers now), the fallback note, and the instructions form."""
    from django import forms

    active = assistants.active_assistants()
    choice = assistants.for_conversation(conversation, active)
    switch = forms.Form()
    assistant_field(switch, active, initial=choice.assistant.pk if choice.assistant else None)
    # The assistant that is no longer available (one more query, only then).
    lost = conversation.assistant if choice.fell_back else None
    return {
        "assistant_choice": choice,
        "assistant_form": switch if "assistant" in switch.fields else None,
        "assistant_lost": lost,
        "instructions_form": instructions_form
        or InstructionsForm(initial={"instructions": conversation.instructions}),
    }


def render_conversation(
    request,
    conversation,
    form=None,
    rename_form=None,
    error="",
    status=200,
    instructions_form=None,
):
    before_id = message_id_param(request.GET.get("before"))
    leaf_id = leaf_param(request)
    chat_messages, has_earlier, paged, newest_id = _page_of_messages(
        conversation, before_id, leaf_id
    )
    if paged and newest_id is None:
        newest_id = (
            Message.objects.filter(conversation=conversation)
            .order_by("-created_at", "-id")
            .values_list("pk", flat=True)
            .first()
        )
    context = {
        "conversation": conversation,
        "chat_messages": chat_messages,
        "has_earlier": has_earlier,
        "earliest_id": chat_messages[0].pk if chat_messages else None,
        "paged": paged,
        # The live script syncs from this id: the newest message of the
        # conversation, whichever branch or older page is shown.
        "last_message_id": newest_id or 0,
        # The branch a send from this page continues.
        "leaf_id": chat_messages[-1].pk if chat_messages and not paged else "",
        "chosen_leaf": leaf_id or "",
        "busy": services.has_unfinished_task(conversation),
        "form": form or MessageForm(),
        "rename_form": rename_form or RenameForm(initial={"title": conversation.title}),
        "composer_error": error,
        "max_length": settings.CHAT_MESSAGE_MAX_LENGTH,
        "attachment_max_files": settings.ATTACHMENT_MAX_FILES,
        "attachment_max_bytes": settings.ATTACHMENT_MAX_BYTES,
        # An archived conversation (opened from search, say) shows beside the archived list.
        "sidebar": sidebar(request, archived=conversation.is_archived),
        **_assistant_context(conversation, instructions_form),
    }
    return render(request, "chat/conversation.html", context, status=status)


@login_required
@require_GET
def conversation_detail(request, pk):
    return render_conversation(request, owned(request, pk))


@login_required
@require_POST
def conversation_rename(request, pk):
    conversation = owned(request, pk)
    form = RenameForm(request.POST)
    if not form.is_valid():
        if wants_json(request):
            return JsonResponse({"error": form.errors["title"][0]}, status=400)
        return render_conversation(request, conversation, rename_form=form, status=400)
    services.rename_conversation(request.user, conversation, form.cleaned_data["title"])
    if wants_json(request):
        return JsonResponse({"id": conversation.pk, "title": conversation.title})
    flash.success(request, "Conversation renamed.")
    return see_other(conversation.get_absolute_url())


@login_required
@require_POST
def conversation_archive(request, pk):
    """Archive (`archived=1`, the default) or unarchive (`archived=0`)."""
    conversation = owned(request, pk)
    archived = request.POST.get("archived", "1") != "0"
    services.set_archived(request.user, conversation, archived)
    if wants_json(request):
        return JsonResponse({"id": conversation.pk, "is_archived": conversation.is_archived})
    if archived:
        flash.success(request, f"Archived “{conversation}”.")
        return see_other(reverse("chat:list"))
    flash.success(request, f"“{conversation}” is back among your conversations.")
    return see_other(conversation.get_absolute_url())


@login_required
@require_http_methods(["GET", "POST"])
def conversation_delete(request, pk):
    """GET asks for confirmation; POST deletes."""
    conversation = owned(request, pk)
    if request.method == "GET":
        count = conversation.messages.count()
        context = {"conversation": conversation, "message_count": count}
        context["sidebar"] = sidebar(request)
        return render(request, "chat/delete_confirm.html", context)
    title = str(conversation)
    services.delete_conversation(request.user, conversation)
    if wants_json(request):
        return JsonResponse({"deleted": pk})
    flash.success(request, f"Deleted “{title}”.")
    return see_other(reverse("chat:list"))


@login_required
@require_POST
def conversation_assistant(request, pk):
    """Switch who answers the conversation from its next reply on (`assistant`:
    an active assistant's id; anything else is a 404, as the conversation of
    another user is). Earlier replies keep naming who wrote them."""
    conversation = owned(request, pk)
    assistant = assistants.chosen(request.POST.get("assistant"))
    if assistant is None:
        raise Http404("no such assistant")
    conversation.assistant = assistant
    conversation.save(update_fields=["assistant", "updated_at"])
    if wants_json(request):
        return JsonResponse({"id": conversation.pk, "assistant": assistant.as_input()})
    flash.success(request, f"{assistant.name} answers from now on.")
    return see_other(conversation.get_absolute_url())


@login_required
@require_POST
def conversation_instructions(request, pk):
    """The conversation's instructions (`instructions`, at most 4,000
    characters; empty: the user's default). Too long: 400, nothing changes."""
    conversation = owned(request, pk)
    form = InstructionsForm(request.POST)
    if not form.is_valid():
        if wants_json(request):
            return JsonResponse({"error": form.errors["instructions"][0]}, status=400)
        return render_conversation(request, conversation, instructions_form=form, status=400)
    conversation.instructions = form.cleaned_data["instructions"]
    conversation.save(update_fields=["instructions", "updated_at"])
    if wants_json(request):
        return JsonResponse({"id": conversation.pk, "instructions": conversation.instructions})
    flash.success(
        request, "Instructions saved." if conversation.instructions else "Instructions cleared."
    )
    return see_other(conversation.get_absolute_url())
