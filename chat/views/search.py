"""Search over the user's own messages and titles (chat/search/query.py)."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.limits import check, too_many

from ..search import query as finder
from .common import positive_int, sidebar

SEARCH_LIMIT_GROUP = "chat.search"


@login_required
@require_GET
def search(request):
    """`?q=words` over the user's own messages and titles; `page` for more.

    Each search (not the empty form) counts against SEARCH_RATE_LIMIT, per
    user: past it 429, before anything is read."""
    query = finder.normalize(request.GET.get("q", ""))
    if query:
        refusal = check(request, SEARCH_LIMIT_GROUP, settings.SEARCH_RATE_LIMIT)
        if refusal is not None:
            return too_many(request, refusal)
    context = {
        "query": query[: finder.MAX_QUERY_LENGTH * 2],
        "max_length": finder.MAX_QUERY_LENGTH,
        "sidebar": sidebar(request),
        "results": None,
        "error": "",
    }
    status = 200
    if query:
        try:
            page = positive_int(request.GET.get("page"), 1)
            context["results"] = finder.search(request.user, query, page)
        except finder.SearchRefused as refused:
            context["error"], status = refused.message, 400
    return render(request, "chat/search.html", context, status=status)
