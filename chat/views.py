"""The chat pages: short views that parse, call chat.services, and render.

Every queryset starts from `Conversation.objects.for_user(request.user)`, so
another user's conversation is a 404 whatever the URL.
"""

from django.conf import settings
from django.contrib import messages as flash
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chatproject.limits import check, rate_limited, too_many

from . import services
from .forms import MessageForm, NewConversationForm, RenameForm, SignupForm
from .models import Conversation, Message, Role

SIDEBAR_SIZE = 50
# Every view that makes the assistant reply (send, retry, regenerate, edit)
# shares one budget per user: CHAT_RATE_LIMIT. Past it: 429, nothing stored.
SEND_LIMIT_GROUP = "chat.send"
limit_sends = rate_limited(SEND_LIMIT_GROUP, "CHAT_RATE_LIMIT")
# Beyond this a page number is nonsense (and its offset would overflow the
# database's integers): 404, like a page past the last one.
MAX_LIST_PAGE = 100_000
MAX_ID = 2**63 - 1


def _see_other(url):
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


def _wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _owned(request, pk):
    return get_object_or_404(Conversation.objects.for_user(request.user), pk=pk)


def _positive_int(value, default=None):
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return number if number > 0 else default


def _message_id(value):
    """A positive id a bigint can hold (SQLite cannot even be asked about
    more), or None."""
    number = _positive_int(value)
    return number if number is not None and number <= MAX_ID else None


def _sidebar(request, archived=False):
    """One bounded query: a page of conversations with their last message's start."""
    # Older pages of the list live at /chat/?page=N; other pages show the first.
    on_list = request.resolver_match.url_name == "list"
    page = _positive_int(request.GET.get("page"), 1) if on_list else 1
    if page > MAX_LIST_PAGE:
        raise Http404("no such page")
    queryset = Conversation.objects.for_user(request.user)
    queryset = queryset.archived() if archived else queryset.active()
    start = (page - 1) * SIDEBAR_SIZE
    rows = list(
        queryset.with_preview()
        .only("id", "title", "updated_at", "is_archived")
        .order_by("-updated_at", "-id")[start : start + SIDEBAR_SIZE + 1]
    )
    if page > 1 and not rows:
        raise Http404("no such page")
    return {
        "conversations": rows[:SIDEBAR_SIZE],
        "archived": archived,
        "page": page,
        "next_page": page + 1 if len(rows) > SIDEBAR_SIZE else None,
        "previous_page": page - 1 if page > 1 else None,
    }


# --- Accounts -------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@rate_limited("accounts.signup", "SIGNUP_RATE_LIMIT", key="ip")
def signup(request):
    if request.user.is_authenticated:
        return redirect("chat:list")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return _see_other(reverse("chat:list"))
    status = 400 if request.method == "POST" else 200
    return render(request, "registration/signup.html", {"form": form}, status=status)


# --- Conversations ----------------------------------------------------------------


@login_required
@require_GET
def conversation_list(request):
    archived = request.GET.get("archived") == "1"
    return _render_list(request, NewConversationForm(), archived=archived)


def _render_list(request, form, archived=False, status=200):
    context = {"form": form, "sidebar": _sidebar(request, archived=archived)}
    return render(request, "chat/index.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
@rate_limited("chat.conversation", "CONVERSATION_RATE_LIMIT")
def conversation_new(request):
    """GET: an empty composer, nothing stored; POST: create (optional title and content)."""
    if request.method == "GET":
        return _render_new(request, MessageForm())
    if request.POST.get("content", "").strip():
        # A first message is a send like any other.
        refusal = check(request, SEND_LIMIT_GROUP, settings.CHAT_RATE_LIMIT)
        if refusal is not None:
            return too_many(request, refusal)
    form = NewConversationForm(request.POST)
    if not form.is_valid():
        if "title" not in request.POST:
            # From the new-conversation composer (it has no title field): say
            # why there, with the text kept in the box.
            error = form.errors.get("content", [""])[0]
            return _render_new(request, form, error=error, status=400)
        return _render_list(request, form, status=400)
    title = form.cleaned_data["title"].strip()
    content = form.cleaned_data["content"]
    with transaction.atomic():
        conversation = Conversation.objects.create(user=request.user, title=title)
        if content:
            services.send_message(request.user, conversation, content)
    return _see_other(conversation.get_absolute_url())


def _render_new(request, form, error="", status=200):
    context = {
        "form": form,
        "composer_error": error,
        "max_length": settings.CHAT_MESSAGE_MAX_LENGTH,
        "new_conversation": True,
        "sidebar": _sidebar(request),
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

    from . import branches

    size = settings.CHAT_PAGE_SIZE
    anchor = None
    if before_id:
        anchor = Message.objects.filter(conversation=conversation, pk=before_id).first()
    newest = Message.objects.filter(conversation=OuterRef("conversation_id")).order_by(
        "-created_at", "-id"
    )
    queryset = (
        Message.objects.select_related("async_task")
        .prefetch_related("async_task__events")  # the replies' "Details", one query
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


def _render_conversation(request, conversation, form=None, rename_form=None, error="", status=200):
    before_id = _message_id(request.GET.get("before"))
    leaf_id = _leaf_param(request)
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
        "sidebar": _sidebar(request),
    }
    return render(request, "chat/conversation.html", context, status=status)


def _leaf_param(request):
    """`?leaf=` as a message id; anything but a positive integer is a 404."""
    value = request.GET.get("leaf")
    if value in (None, ""):
        return None
    leaf_id = _message_id(value)
    if leaf_id is None:
        raise Http404("no such message")
    return leaf_id


@login_required
@require_GET
def conversation_detail(request, pk):
    return _render_conversation(request, _owned(request, pk))


def _refused(request, conversation, error, status, form=None):
    if _wants_json(request):
        return JsonResponse({"error": error}, status=status)
    return _render_conversation(request, conversation, form=form, error=error, status=status)


def _sent(request, conversation, message, status=201):
    if _wants_json(request):
        frame = services.message_frame(message)
        body = {"message": frame["message"], "task": message.async_task.as_frame()}
        body["html"] = frame["html"]
        # Additive: the page shows a title derived from the first message at once.
        body["conversation"] = {"id": conversation.pk, "title": conversation.title}
        return JsonResponse(body, status=status)
    return _see_other(f"{conversation.get_absolute_url()}#message-{message.pk}")


def _parent_param(request):
    """The `parent_id` a send carries (the leaf the page shows), or None."""
    value = request.POST.get("parent_id", "")
    if value == "":
        return None
    parent_id = _message_id(value)
    if parent_id is None:
        raise services.SendRefused(services.NOT_IN_CONVERSATION, code="bad_parent", status=400)
    return parent_id


@login_required
@require_POST
@limit_sends
def message_create(request, pk):
    conversation = _owned(request, pk)
    form = MessageForm(request.POST)
    if not form.is_valid():
        error = form.errors["content"][0]
        return _refused(request, conversation, error, 400, form=form)
    try:
        parent_id = _parent_param(request)
        message = services.send_message(
            request.user, conversation, form.cleaned_data["content"], parent_id=parent_id
        )
    except services.SendRefused as refused:
        return _refused(request, conversation, refused.message, refused.status, form=form)
    return _sent(request, conversation, message)


@login_required
@require_POST
@limit_sends
def message_retry(request, pk, message_id):
    conversation = _owned(request, pk)
    message = get_object_or_404(
        Message.objects.filter(conversation=conversation, role=Role.USER), pk=message_id
    )
    try:
        message = services.retry(request.user, message)
    except services.SendRefused as refused:
        return _refused(request, conversation, refused.message, refused.status)
    return _sent(request, conversation, message)


@login_required
@require_POST
@limit_sends
def message_regenerate(request, pk, message_id):
    """A new reply to the user message an assistant message answers."""
    conversation = _owned(request, pk)
    reply = get_object_or_404(
        Message.objects.filter(conversation=conversation, role=Role.ASSISTANT), pk=message_id
    )
    try:
        question = services.regenerate(request.user, conversation, reply)
    except services.SendRefused as refused:
        return _refused(request, conversation, refused.message, refused.status)
    return _sent(request, conversation, question)


@login_required
@require_http_methods(["GET", "POST"])
@limit_sends
def message_edit(request, pk, message_id):
    """POST `content`: a new version of a user message (its sibling) and its
    reply. GET: a small page with the form (the page's no-JS fallback)."""
    conversation = _owned(request, pk)
    original = get_object_or_404(
        Message.objects.filter(conversation=conversation, role=Role.USER), pk=message_id
    )
    if request.method == "GET":
        form = MessageForm(initial={"content": original.content})
        return _render_edit(request, conversation, original, form)
    form = MessageForm(request.POST)
    if not form.is_valid():
        error = form.errors["content"][0]
        if _wants_json(request):
            return JsonResponse({"error": error}, status=400)
        return _render_edit(request, conversation, original, form, error, status=400)
    try:
        message = services.edit(request.user, conversation, original, form.cleaned_data["content"])
    except services.SendRefused as refused:
        if _wants_json(request):
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
        "sidebar": _sidebar(request),
    }
    return render(request, "chat/edit.html", context, status=status)


@login_required
@require_GET
def search(request):
    """`?q=words` over the user's own messages and titles; `page` for more."""
    from . import search as finder

    query = " ".join(request.GET.get("q", "").split())
    context = {
        "query": query[: finder.MAX_QUERY_LENGTH * 2],
        "max_length": finder.MAX_QUERY_LENGTH,
        "sidebar": _sidebar(request),
        "results": None,
        "error": "",
    }
    status = 200
    if query:
        try:
            page = _positive_int(request.GET.get("page"), 1)
            context["results"] = finder.search(request.user, query, page)
        except finder.SearchRefused as refused:
            context["error"], status = refused.message, 400
    return render(request, "chat/search.html", context, status=status)


@login_required
@require_GET
def conversation_export(request, pk):
    """`?format=md` (the default) or `?format=json`, as a download."""
    from django.http import HttpResponse, StreamingHttpResponse

    from . import export

    conversation = _owned(request, pk)
    fmt = request.GET.get("format", "md")
    if fmt not in export.FORMATS:
        return HttpResponse(
            "Unknown export format: use ?format=md or ?format=json.",
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    content_type, extension = export.FORMATS[fmt]
    if fmt == "json":
        body = export.as_json(conversation)
    else:
        leaf_id = _leaf_param(request)
        if leaf_id and not conversation.messages.filter(pk=leaf_id).exists():
            raise Http404("no such message")
        body = export.as_markdown(conversation, leaf_id)
    response = StreamingHttpResponse(body, content_type=content_type)
    filename = f"conversation-{conversation.pk}.{extension}"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
@require_POST
def conversation_rename(request, pk):
    conversation = _owned(request, pk)
    form = RenameForm(request.POST)
    if not form.is_valid():
        if _wants_json(request):
            return JsonResponse({"error": form.errors["title"][0]}, status=400)
        return _render_conversation(request, conversation, rename_form=form, status=400)
    services.rename_conversation(request.user, conversation, form.cleaned_data["title"])
    if _wants_json(request):
        return JsonResponse({"id": conversation.pk, "title": conversation.title})
    flash.success(request, "Conversation renamed.")
    return _see_other(conversation.get_absolute_url())


@login_required
@require_POST
def conversation_archive(request, pk):
    """Archive (`archived=1`, the default) or unarchive (`archived=0`)."""
    conversation = _owned(request, pk)
    archived = request.POST.get("archived", "1") != "0"
    services.set_archived(request.user, conversation, archived)
    if _wants_json(request):
        return JsonResponse({"id": conversation.pk, "is_archived": conversation.is_archived})
    if archived:
        flash.success(request, f"Archived “{conversation}”.")
        return _see_other(reverse("chat:list"))
    flash.success(request, f"“{conversation}” is back among your conversations.")
    return _see_other(conversation.get_absolute_url())


@login_required
@require_http_methods(["GET", "POST"])
def conversation_delete(request, pk):
    """GET asks for confirmation; POST deletes."""
    conversation = _owned(request, pk)
    if request.method == "GET":
        count = conversation.messages.count()
        context = {"conversation": conversation, "message_count": count}
        context["sidebar"] = _sidebar(request)
        return render(request, "chat/delete_confirm.html", context)
    title = str(conversation)
    services.delete_conversation(request.user, conversation)
    if _wants_json(request):
        return JsonResponse({"deleted": pk})
    flash.success(request, f"Deleted “{title}”.")
    return _see_other(reverse("chat:list"))
