"""Search over the user's own messages and titles (chat/search/query.py)."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from ..search import query as finder
from .common import positive_int, sidebar


@login_required
@require_GET
def search(request):
    """`?q=words` over the user's own messages and titles; `page` for more."""
    query = " ".join(request.GET.get("q", "").split())
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
