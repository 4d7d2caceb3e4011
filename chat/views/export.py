"""A conversation as a download: Markdown (a branch) or JSON (the tree)."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET

from .. import export
from .common import leaf_param, owned


@login_required
@require_GET
def conversation_export(request, pk):
    """`?format=md` (the default) or `?format=json`, as a download; `?tz=`
    an IANA zone name for the times (the page adds the reader's)."""
    conversation = owned(request, pk)
    fmt = request.GET.get("format", "md")
    try:
        zone = export.reader_zone(request.GET.get("tz", ""))
    except ValueError:
        return HttpResponse(
            "Unknown time zone: use an IANA name such as Europe/Paris.",
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    if fmt not in export.FORMATS:
        return HttpResponse(
            "Unknown export format: use ?format=md or ?format=json.",
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    content_type, extension = export.FORMATS[fmt]
    if fmt == "json":
        body = export.as_json(conversation, zone)
    else:
        leaf_id = leaf_param(request)
        if leaf_id and not conversation.messages.filter(pk=leaf_id).exists():
            raise Http404("no such message")
        body = export.as_markdown(conversation, leaf_id, zone)
    response = StreamingHttpResponse(body, content_type=content_type)
    filename = f"conversation-{conversation.pk}.{extension}"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
