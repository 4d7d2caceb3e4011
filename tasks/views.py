import functools
import logging
import time

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from observability import metrics

from . import callbacks, frames, services
from .models import AsyncTask, EventSource

logger = logging.getLogger(__name__)


@login_required
def task_detail(request, pk):
    task = get_object_or_404(AsyncTask.objects.for_user(request.user), pk=pk)
    return JsonResponse({"task": task.as_frame()})


def _wants_json(request):
    return "application/json" in request.headers.get("Accept", "")


def _back(request):
    target = request.POST.get("next") or request.headers.get("Referer") or "/"
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = "/"
    return HttpResponseRedirect(target)


@login_required
@require_POST
def task_cancel(request, pk):
    """Stop one of the user's own unfinished tasks (the page's Stop button)."""
    task = get_object_or_404(AsyncTask.objects.for_user(request.user), pk=pk)
    try:
        task = services.cancel(task.pk, by=request.user.get_username(), source=EventSource.USER)
    except services.TaskConflict as exc:
        if _wants_json(request):
            return _error(409, f"the task is already {exc.task.status}", status=exc.task.status)
        return _back(request)
    if _wants_json(request):
        return JsonResponse({"task": task.as_frame()})
    return _back(request)


def _error(http_status, message, **extra):
    return JsonResponse({"error": message, **extra}, status=http_status)


def _unknown_task(pk):
    """The 404 that comes before any other refusal of a callback, or None."""
    if AsyncTask.objects.filter(pk=pk).exists():
        return None
    return _error(404, "no task has this id")


def _bearer_token(request):
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    # Tokens are ASCII; anything else is simply wrong (and not worth encoding).
    return token if scheme.lower() == "bearer" and token.isascii() else ""


def _observed(view):
    """Every callback answer: counted by status code, and one log line."""

    @functools.wraps(view)
    def wrapper(request, pk):
        started = time.monotonic()
        marker = frames.callback_started.set(started)
        try:
            response = view(request, pk)
        finally:
            frames.callback_started.reset(marker)
        metrics.record_callback(response.status_code)
        asked = getattr(request, "callback_fields", {})
        logger.log(
            logging.INFO if response.status_code < 400 else logging.WARNING,
            "callback for task %s: %s",
            pk,
            response.status_code,
            extra={
                "event": "task.callback",
                "task_id": pk,
                "http_status": response.status_code,
                "outcome": "applied" if response.status_code == 200 else "refused",
                "status": asked.get("status"),
                "execution_id": asked.get("execution_id"),
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
            },
        )
        return response

    return wrapper


@csrf_exempt
@_observed
def task_webhook(request, pk):
    """n8n reports progress and results here (docs/PROTOCOL.md, "Callback").

    The order of the checks is part of the contract: method, size (before the
    body is read), task (404 before the token), token, body, state.
    """
    if request.method != "POST":
        response = _error(405, "only POST is allowed here")
        response["Allow"] = "POST"
        return response
    limit = settings.TASK_WEBHOOK_MAX_BYTES
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _error(400, "invalid Content-Length")
    if length > limit:
        return _error(413, f"the body is larger than {limit} bytes")
    # A valid token is an HMAC of this id, so the task existed: its lookup can
    # wait for the row lock below. Only a refused token costs a query here, to
    # answer 404 for an unknown task before 401 (the contract's order).
    if not callbacks.check_token(pk, _bearer_token(request)):
        return _unknown_task(pk) or _error(401, "missing or wrong callback token for this task")
    raw = request.read(limit + 1)
    if len(raw) > limit:
        return _error(413, f"the body is larger than {limit} bytes")
    try:
        payload = callbacks.loads(raw, settings.TASK_WEBHOOK_MAX_DEPTH)
    except callbacks.JSONRejected as rejected:
        # A valid token of a task deleted since: the unknown task still comes first.
        return _unknown_task(pk) or _error(400, str(rejected))
    if isinstance(payload, dict):  # for the log line: what the workflow said
        request.callback_fields = {
            key: str(payload[key])[:100]
            for key in ("status", "execution_id")
            if isinstance(payload.get(key), str | int)
        }
    try:
        task, _applied = services.apply_callback(pk, payload)
    except services.CallbackError as exc:
        # The unknown task comes first.
        return _unknown_task(pk) or _error(getattr(exc, "status", 400), str(exc))
    except services.TaskConflict as exc:
        return _error(
            409, f"the task is already {exc.task.status}", status=exc.task.status, task_id=pk
        )
    except AsyncTask.DoesNotExist:  # deleted meanwhile
        return _error(404, "no task has this id")
    return JsonResponse({"task_id": task.pk, "status": task.status})
