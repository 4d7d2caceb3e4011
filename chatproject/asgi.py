"""ASGI entry point: Django over HTTP, Channels consumers over websockets."""

import asyncio
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from accounts.limits import scope_client_ip  # noqa: E402
from chat.routing import websocket_urlpatterns as chat_ws  # noqa: E402
from live import publish as live  # noqa: E402
from observability.access import AccessLog  # noqa: E402
from tasks.routing import websocket_urlpatterns as tasks_ws  # noqa: E402

from . import bodylimit  # noqa: E402
from .security import SameOriginValidator  # noqa: E402

# Oversized bodies are refused while Daphne receives them, not after.
bodylimit.install()

# Every request and socket is logged by the app (logger `chatproject.access`,
# path without its query string), not by Daphne.
router = AccessLog(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(chat_ws + tasks_ws))),
        }
    ),
    client_address=scope_client_ip,
)

_started = False


async def application(scope, receive, send):
    # Remember the loop that serves the websockets, so that threads without a
    # loop of their own (the in-process worker, the dispatcher) publish on it.
    global _started
    if not _started:
        _started = True
        live.remember_server_loop(asyncio.get_running_loop())
        if settings.TASKS_WORKER_IN_PROCESS:
            from tasks.worker import start_in_process_worker

            start_in_process_worker()
    await router(scope, receive, send)
