"""Per-user and per-address rate limits on top of django-ratelimit.

Counts live in Django's cache: Redis when REDIS_URL is set (so every server
process shares them), local memory otherwise (one process, as `make run`).
A limit is a rate like `20/m` (django-ratelimit's syntax: s, m, h, d); an
empty setting turns that limit off.
"""

import ipaddress
import logging
from functools import wraps

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render
from django_ratelimit import ALL
from django_ratelimit.core import get_usage

logger = logging.getLogger(__name__)


def client_ip(request):
    """The client's address: REMOTE_ADDR, or the header the operator's proxy sets.

    Only the header named in CLIENT_IP_HEADER is trusted (anyone can send an
    X-Forwarded-For); of a comma list its last entry is taken, the one the
    operator's own proxy appended.
    """
    header = settings.CLIENT_IP_HEADER
    if header:
        candidate = request.headers.get(header, "").split(",")[-1].strip()
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            pass
    # None when there is no address at all (a request built in code): axes
    # stores it in an inet column, which takes no placeholder words.
    return request.META.get("REMOTE_ADDR") or None


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
        "Too many failed logins for this account or from this address. "
        f"Try again in {minutes} minutes."
    )
    response = render(request, "429.html", {"message": message}, status=429)
    response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    return response


def forgive_failed_logins(sender, request, user, **kwargs):
    """A success resets the failure count of that username (and only its own:
    the address's failures against other usernames still count)."""
    from axes.models import AccessAttempt

    AccessAttempt.objects.filter(username=user.get_username()).delete()
