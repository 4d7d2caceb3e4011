"""Files: `/files/{id}/` (the owner, or a link signed for a task) and
`/files/{id}/thumbnail/` (the owner).

Every answer carries `X-Content-Type-Options: nosniff` and a sandboxing
Content-Security-Policy; only raster images (PNG, JPEG, GIF, WebP, BMP) are
shown inline, everything else (SVG and HTML included) is a download.
"""

from django.contrib.auth.views import redirect_to_login
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from ..models import Attachment
from . import links, thumbnails

MAX_ID = 2**63 - 1  # what a bigint holds (SQLite cannot even be asked about more)

FORBIDDEN = "This link is not valid, or no longer: ask again in the conversation.\n"


def _protect(response, private=True):
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=3600" if private else "no-store"
    return response


def _open(name):
    try:
        return default_storage.open(name, "rb")
    except (FileNotFoundError, OSError):
        raise Http404("the file is gone") from None


def _own(request, pk):
    if pk > MAX_ID:
        raise Http404
    return get_object_or_404(Attachment.objects.for_user(request.user), pk=pk)


@require_GET
def file_download(request, pk):
    sig = request.GET.get("sig")
    if sig is not None:
        # A workflow's download: the link is the permission, no session.
        if pk > MAX_ID or not links.check(pk, sig):
            return HttpResponse(FORBIDDEN, status=403, content_type="text/plain; charset=utf-8")
        attachment = get_object_or_404(Attachment, pk=pk)
    elif not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    else:
        attachment = _own(request, pk)
    response = FileResponse(
        _open(attachment.file),
        as_attachment=not attachment.is_image,
        filename=attachment.name,
        content_type=attachment.content_type,
    )
    response["Content-Length"] = str(attachment.size)
    return _protect(response, private=sig is None)


@require_GET
def file_thumbnail(request, pk):
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    attachment = _own(request, pk)
    name = thumbnails.thumbnail(attachment.file) if attachment.is_image else None
    if name is None:
        raise Http404("no thumbnail")
    response = FileResponse(_open(name), content_type=thumbnails.CONTENT_TYPE)
    return _protect(response)
