import asyncio
import hmac
import logging
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

CHECK_TIMEOUT_SECONDS = 2.0

logger = logging.getLogger(__name__)


def check_database():
    if connection.vendor == "postgresql":
        # A connection of its own with a short connect timeout: through the
        # pool, a probe waited for the pool's reconnect while PostgreSQL was
        # down and gave no answer at all (seen in `make chaos`).
        import psycopg

        db = connection.settings_dict
        with psycopg.connect(
            dbname=db["NAME"],
            user=db.get("USER") or None,
            password=db.get("PASSWORD") or None,
            host=db.get("HOST") or None,
            port=db.get("PORT") or None,
            connect_timeout=int(CHECK_TIMEOUT_SECONDS),
        ) as probe:
            probe.execute("SELECT 1").fetchone()
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def _layer_round_trip(layer, nonce):
    # The default prefix: on channels-redis, receives on a channel made with
    # another prefix wait behind an open websocket's receive in this process,
    # so the probe timed out whenever a socket was open.
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "healthz.ping", "nonce": nonce})
    message = await asyncio.wait_for(layer.receive(channel), CHECK_TIMEOUT_SECONDS)
    if message.get("nonce") != nonce:
        raise RuntimeError("the channel layer returned another message")


def check_channel_layer():
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer is configured")
    async_to_sync(_layer_round_trip)(layer, uuid.uuid4().hex)


def _worker_state():
    """ "ok", "unknown" (no worker has ever beaten: not a failure), or "stale"."""
    from django.conf import settings

    from tasks.worker import heartbeat_age

    age = heartbeat_age()
    if age is None:
        return "unknown"
    return "ok" if age <= settings.TASKS_WORKER_HEARTBEAT_MAX_AGE else "stale"


@never_cache
@require_GET
def healthz(request):
    """200 when the database and the channel layer answer and the worker's
    heartbeat is fresh (or no worker ever ran); 503 naming the failing part.
    The public sees status words only; the exception goes to the log."""
    checks = {}
    for name, check in (("database", check_database), ("channel_layer", check_channel_layer)):
        try:
            check()
            checks[name] = "ok"
        except Exception:  # noqa: BLE001 - any failure is reported, not raised
            logger.exception("healthz: the %s check failed", name)
            checks[name] = "error"
    if checks["database"] == "ok":
        try:
            checks["worker"] = _worker_state()
        except Exception:  # noqa: BLE001
            logger.exception("healthz: the worker check failed")
            checks["worker"] = "error"
    healthy = all(value in ("ok", "unknown") for value in checks.values())
    return JsonResponse(checks, status=200 if healthy else 503)


@never_cache
@require_GET
def metrics(request):
    """Prometheus text format, for `Authorization: Bearer {METRICS_TOKEN}` only.

    404 while METRICS_TOKEN is unset (the endpoint does not exist), 401 for a
    missing or wrong token. A token, not the client address: behind a proxy
    every request comes from the proxy."""
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404("no metrics here")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        response = JsonResponse({"error": "a valid metrics token is required"}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    from observability import metrics as prometheus

    body, content_type = prometheus.exposition()
    return HttpResponse(body, content_type=content_type)
