"""Per-user and per-address rate limits on top of django-ratelimit.

Counts live in Django's cache: Redis when REDIS_URL is set (so every server
process shares them), local memory otherwise (one process, as `make run`).
A limit is a rate like `20/m` (django-ratelimit's syntax: s, m, h, d); an
empty setting turns that limit off.
"""

import ipaddress
import logging
from functools import lru_cache, wraps

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render
from django_ratelimit import ALL
from django_ratelimit.core import get_usage

logger = logging.getLogger(__name__)


def client_ip(request):
    """The client's address, for every limit that counts per address.

    The connection's own address (REMOTE_ADDR), unless it comes from one of
    TRUSTED_PROXIES: only then is the header named in CLIENT_IP_HEADER read
    (of a comma list its last entry, the one the operator's own proxy
    appended). A client reaching the server directly cannot pick its address,
    whatever it sends. None when there is no address at all (a request built
    in code): axes stores it in an inet column, which takes no placeholder.
    """
    return _client(request.META.get("REMOTE_ADDR", ""), request.headers.get)


def scope_client_ip(scope):
    """The same address for an ASGI scope (the access log, for HTTP and websockets)."""
    client = scope.get("client")

    def header(name, default=""):
        wanted = name.lower().encode("latin-1")
        values = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == wanted]
        return ",".join(values) if values else default

    return _client(client[0] if client else "", header)


def _client(remote_addr, header_value):
    peer = _address(remote_addr or "")
    if peer is None:
        return None
    header = settings.CLIENT_IP_HEADER
    if header and _trusted(peer):
        forwarded = _address(header_value(header, "").split(",")[-1])
        if forwarded is not None:
            return str(forwarded)
    return str(peer)


def _address(text):
    """An IP address, IPv4 seen through a dual-stack socket as itself; or None."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped if mapped is not None else address


@lru_cache(maxsize=8)
def _networks(entries):
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _trusted(address) -> bool:
    return any(address in network for network in _networks(tuple(settings.TRUSTED_PROXIES)))


def _ip_key(group, request):
    return client_ip(request) or "unknown"


def _user_key(group, request):
    return str(request.user.pk)


KEYS = {"user": _user_key, "ip": _ip_key}


class Refusal:
    """What to tell a client that went past a limit."""

    def __init__(self, message, retry_after):
        self.message = message
        self.retry_after = max(1, int(retry_after))


def check(request, group, rate, key="user", increment=True):
    """A Refusal when `request` is past `rate` for its user (or address), else None."""
    if not rate:
        return None
    try:
        usage = get_usage(
            request,
            group=group,
            key=KEYS[key],
            rate=rate,
            method=ALL,
            increment=increment,
        )
    except Exception:  # noqa: BLE001 - the cache (Redis) is down
        # Fail open: while the cache is unreachable nothing is counted, and a
        # send goes through rather than answering 500 (seen in `make chaos`).
        logger.warning("rate limit %s not checked: the cache is unreachable", group, exc_info=True)
        return None
    if usage is None or not usage["should_limit"]:
        return None
    wait = usage["time_left"]
    return Refusal(f"Too many requests: please wait {_duration(wait)} and try again.", wait)


def _duration(seconds):
    seconds = max(1, int(seconds))
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = round(seconds / 60)
    return f"{minutes} minutes"


def too_many(request, refusal):
    """429: JSON `{"error", "retry_after"}` for fetch, a plain page otherwise."""
    if "application/json" in request.headers.get("Accept", ""):
        response = JsonResponse(
            {"error": refusal.message, "retry_after": refusal.retry_after}, status=429
        )
    else:
        response = render(request, "429.html", {"message": refusal.message}, status=429)
    response["Retry-After"] = str(refusal.retry_after)
    return response


def rate_limited(group, rate_setting, key="user", methods=("POST",)):
    """Decorate a view: past the rate named by `rate_setting`, answer 429 before
    the view runs (so nothing is stored). Every call with one of `methods`
    counts, refused or not. Put it under `login_required` when `key` is "user"."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if request.method in methods:
                refusal = check(request, group, getattr(settings, rate_setting), key=key)
                if refusal is not None:
                    return too_many(request, refusal)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def login_lockout(request, original_response=None, credentials=None):
    """django-axes' answer past LOGIN_FAILURE_LIMIT: 429 with a plain message."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    message = (
        "Too many failed logins for this account from this address. "
        f"Try again in {minutes} minutes."
    )
    response = render(request, "429.html", {"message": message}, status=429)
    response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    return response


def forgive_failed_logins(sender, request, user, **kwargs):
    """A success resets the failure count of that username from that address,
    the pair a lockout is keyed on: not the address's failures against other
    usernames, nor the username's failures from elsewhere (the owner logging
    in from home does not unlock a stranger guessing from another address)."""
    from axes.models import AccessAttempt

    address = client_ip(request) if request is not None else None
    AccessAttempt.objects.filter(username=user.get_username(), ip_address=address).delete()
