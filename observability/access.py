"""The access log: one line per HTTP request and per websocket connection,
written through Python logging (logger `chatproject.access`), so that
settings.LOGGING and `LOG_FORMAT=json` apply to it.

Daphne's own access log is off in production (`daphne -v 0`, no
`--access-log`): it writes outside Python logging and keeps the query string,
where tokens travel. Here the path is the raw path as the client sent it
(percent-escapes kept, so a line stays one line), without its query string.

An HTTP request is logged once its response is finished (or the application
ended without one); a websocket connection when it ends, with 101 when it was
accepted, 403 when it was refused before, and the close code. A body Daphne
refuses itself (413, `chatproject/bodylimit.py`) never reaches the
application and so is not logged here.
"""

import logging
import time

logger = logging.getLogger("chatproject.access")

PATH_MAX_CHARS = 1000


def scope_client(scope):
    """The peer's address as the server saw it (the proxy's, behind one)."""
    client = scope.get("client")
    return client[0] if client else None


def logged_path(scope) -> str:
    raw = scope.get("raw_path")
    if raw:
        path = raw.decode("latin-1").split("?", 1)[0]
    else:
        path = scope.get("root_path", "") + scope.get("path", "")
        path = path.encode("unicode_escape").decode("ascii")
    return path[:PATH_MAX_CHARS]


class AccessLog:
    """ASGI middleware around the whole application; `client_address(scope)`
    names the client as the app counts it (default: the scope's peer)."""

    def __init__(self, app, client_address=scope_client):
        self.app = app
        self.client_address = client_address

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            return await self._http(scope, receive, send)
        if scope["type"] == "websocket":
            return await self._websocket(scope, receive, send)
        return await self.app(scope, receive, send)

    async def _http(self, scope, receive, send):
        started = time.monotonic()
        seen = {"status": None, "done": False}

        async def watched_send(message):
            kind = message["type"]
            if kind == "http.response.start":
                seen["status"] = message["status"]
            await send(message)
            if kind == "http.response.body" and not message.get("more_body", False):
                if not seen["done"]:
                    seen["done"] = True
                    self._log(scope, scope.get("method", ""), seen["status"], started)

        try:
            await self.app(scope, receive, watched_send)
        except BaseException:
            if not seen["done"]:
                seen["done"] = True
                # Daphne answers 500 for an application that raised before answering.
                self._log(scope, scope.get("method", ""), seen["status"] or 500, started)
            raise
        if not seen["done"]:
            self._log(scope, scope.get("method", ""), seen["status"], started)

    async def _websocket(self, scope, receive, send):
        started = time.monotonic()
        seen = {"status": None, "close_code": None}

        async def watched_send(message):
            kind = message["type"]
            if kind == "websocket.accept":
                seen["status"] = 101
            elif kind == "websocket.close":
                if seen["status"] is None:
                    seen["status"] = 403  # closed before the handshake completed
                seen["close_code"] = message.get("code", 1000)
            await send(message)

        async def watched_receive():
            message = await receive()
            if message["type"] == "websocket.disconnect" and seen["close_code"] is None:
                seen["close_code"] = message.get("code")
            return message

        try:
            await self.app(scope, watched_receive, watched_send)
        finally:
            self._log(scope, "WEBSOCKET", seen["status"], started, close_code=seen["close_code"])

    def _log(self, scope, method, status, started, **fields):
        try:
            client = self.client_address(scope)
        except Exception:
            client = scope_client(scope)
        path = logged_path(scope)
        logger.info(
            "%s %s %s",
            method,
            path,
            status,
            extra={
                "event": "access",
                "method": method,
                "path": path,
                "http_status": status,
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
                "client": client,
                **fields,
            },
        )
