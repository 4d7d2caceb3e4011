"""Response headers and the websocket Origin check.

The Content-Security-Policy header comes from django-csp (settings
`CONTENT_SECURITY_POLICY`); Django's SecurityMiddleware and
XFrameOptionsMiddleware set `X-Content-Type-Options`, `Referrer-Policy` and
`X-Frame-Options`. What neither sets lives here.
"""

from urllib.parse import urlparse

from channels.security.websocket import OriginValidator, WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host


class PermissionsPolicyMiddleware:
    """Turn off the browser features the app never uses (camera, microphone…)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        return response


def _origin(url):
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.netloc}" if parsed.scheme and parsed.netloc else ""


class SameOriginValidator(OriginValidator):
    """Accept a websocket handshake only from the app's own origins.

    Scheme, host and port must all match (Channels' `AllowedHostsOriginValidator`
    compares the host alone, so a page on another port of the same host could
    open an authenticated socket). Allowed: the origin the browser used to reach
    this server (its `Host` header, when that host is in ALLOWED_HOSTS, with the
    scheme the request came in on), every origin in CSRF_TRUSTED_ORIGINS, the
    origin of PUBLIC_BASE_URL and WEBSOCKET_ALLOWED_ORIGINS.
    """

    def __init__(self, application):
        super().__init__(application, allowed_origins=[])

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            raise ValueError("SameOriginValidator guards websocket connections only")
        origin = dict(scope.get("headers") or []).get(b"origin")
        parsed = urlparse(origin.decode("latin1")) if origin else None
        if parsed is not None and any(
            self.match_allowed_origin(parsed, allowed) for allowed in self.origins_for(scope)
        ):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)

    @staticmethod
    def origins_for(scope):
        origins = [*settings.CSRF_TRUSTED_ORIGINS, *settings.WEBSOCKET_ALLOWED_ORIGINS]
        origins.append(_origin(settings.PUBLIC_BASE_URL))
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin1")
        domain, _port = split_domain_port(host)
        if domain and validate_host(domain, settings.ALLOWED_HOSTS):
            origins.append(f"{_request_scheme(scope, headers)}://{host}")
        return [origin for origin in origins if origin]


def _request_scheme(scope, headers):
    """https when the handshake came over TLS, or through a proxy that says so
    in the header SECURE_PROXY_SSL_HEADER names (as Django's own request does)."""
    if scope.get("scheme") in ("wss", "https"):
        return "https"
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        name, value = proxy_header
        wanted = name.removeprefix("HTTP_").replace("_", "-").lower().encode("latin1")
        if headers.get(wanted, b"").decode("latin1").split(",")[0].strip() == value:
            return "https"
    return "http"
