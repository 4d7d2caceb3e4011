"""What the chat views share: small request helpers, the sidebar, the send limit.

Every queryset starts from `Conversation.objects.for_user(request.user)`
(`owned`), so another user's conversation is a 404 whatever the URL.
"""

from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404

from accounts.limits import rate_limited

from ..models import Conversation

SIDEBAR_SIZE = 50
# Every view that makes the assistant reply (send, retry, regenerate, edit)
# shares one budget per user: CHAT_RATE_LIMIT. Past it: 429, nothing stored.
SEND_LIMIT_GROUP = "chat.send"
limit_sends = rate_limited(SEND_LIMIT_GROUP, "CHAT_RATE_LIMIT")
# Beyond this a page number is nonsense (and its offset would overflow the
# database's integers): 404, like a page past the last one.
MAX_LIST_PAGE = 100_000
MAX_ID = 2**63 - 1


def see_other(url):
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


def wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def owned(request, pk):
    return get_object_or_404(Conversation.objects.for_user(request.user), pk=pk)


def positive_int(value, default=None):
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return number if number > 0 else default


def message_id_param(value):
    """A positive id a bigint can hold (SQLite cannot even be asked about
    more), or None."""
    number = positive_int(value)
    return number if number is not None and number <= MAX_ID else None


def _answering_name():
    """Who answers a conversation: its own assistant while active, else the
    default's name (a subquery; NULL when no assistant exists)."""
    from django.db.models import Case, F, Subquery, When

    from ..models import Assistant

    default = Assistant.objects.active().order_by("-is_default", "name", "id").values("name")[:1]
    return Case(
        When(assistant__is_active=True, then=F("assistant__name")),
        default=Subquery(default),
    )


def sidebar(request, archived=False):
    """One bounded query: a page of conversations with their last message's start."""
    # Older pages of the list live at /chat/?page=N; other pages show the first.
    on_list = request.resolver_match.url_name == "list"
    page = positive_int(request.GET.get("page"), 1) if on_list else 1
    if page > MAX_LIST_PAGE:
        raise Http404("no such page")
    queryset = Conversation.objects.for_user(request.user)
    queryset = queryset.archived() if archived else queryset.active()
    start = (page - 1) * SIDEBAR_SIZE
    rows = list(
        queryset.with_preview()
        .annotate(assistant_name=_answering_name())
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


def leaf_param(request):
    """`?leaf=` as a message id; anything but a positive integer is a 404."""
    value = request.GET.get("leaf")
    if value in (None, ""):
        return None
    leaf_id = message_id_param(value)
    if leaf_id is None:
        raise Http404("no such message")
    return leaf_id
