"""The app's one HTTP transport: httpx clients, configured once.

Every request the product makes (dispatches, n8n's public API, `n8n_setup`'s
probe, the development runner's callbacks) goes through a client made here, so
they share the same rules: no environment proxies or CA variables
(`trust_env=False`: n8n is reached at N8N_BASE_URL as given, the same way
from every process), redirects never followed (a redirected webhook is an
answer to classify, not a place to send a signed body again), explicit
time-outs, and one TLS context per process (building one per client costs
about 20 ms). Sync code uses `client()`, the dispatch loop
(`tasks/outbound/streaming.py`) `async_client()`.
"""

import functools
import ssl

import httpx

# Connections kept open for reuse, per client.
KEEPALIVE_CONNECTIONS = 20


# What a request that got no answer may raise: httpx's errors (an unusable
# URL among them) and asyncio's time-out around a whole exchange.
ERRORS = (httpx.HTTPError, httpx.InvalidURL, TimeoutError)


def timed_out(exc) -> bool:
    """Whether a request's error (one of ERRORS) means the answer stopped
    coming (a time-out), rather than that n8n could not be reached: not
    connecting in time, or waiting in vain for a free connection, is the
    latter."""
    return isinstance(exc, TimeoutError | httpx.TimeoutException) and not isinstance(
        exc, httpx.ConnectTimeout | httpx.PoolTimeout
    )


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The process's one TLS context: httpx's default (certifi's CAs)."""
    return httpx.create_ssl_context(trust_env=False)


def timeout(connect: float, read: float) -> httpx.Timeout:
    """A connect and a read time-out; writing a body counts as reading, and
    waiting for a free connection as connecting."""
    return httpx.Timeout(connect=connect, read=read, write=read, pool=connect)


def _options(timeout_, **options) -> dict:
    return {
        "timeout": timeout_,
        "follow_redirects": False,
        "trust_env": False,
        "verify": tls_context(),
        **options,
    }


def client(timeout_: httpx.Timeout, **options) -> httpx.Client:
    """A blocking client (close it, or use it in a `with`)."""
    return httpx.Client(**_options(timeout_, **options))


def async_client(timeout_: httpx.Timeout, **options) -> httpx.AsyncClient:
    """An asyncio client, made and used on one event loop."""
    return httpx.AsyncClient(**_options(timeout_, **options))
