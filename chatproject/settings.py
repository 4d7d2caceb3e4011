"""Settings, read from environment variables and an optional `.env` file.

Every variable is listed in `.env.example` and in docs/OPERATIONS.md's settings
table; the defaults are the embedded ones (SQLite, in-memory channel layer,
development workflow runner) so a laptop needs nothing else.
"""

import os
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from .runaddr import base_url_from_run_addr

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEVELOPMENT_SECRET_KEY = "django-insecure-development-key-do-not-use-in-production"

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set and DEBUG is off: set SECRET_KEY (a long random string) "
            "in the environment or in .env before starting with DEBUG off."
        )
    SECRET_KEY = DEVELOPMENT_SECRET_KEY
elif SECRET_KEY == DEVELOPMENT_SECRET_KEY and not DEBUG:
    raise ImproperlyConfigured("The development SECRET_KEY is refused when DEBUG is off.")


def _comma_list(name, default):
    """A comma list from the environment, spaces around the commas allowed."""
    return [item.strip() for item in env.list(name, default=default) if item.strip()]


def trusted_proxies(items):
    """TRUSTED_PROXIES' entries (addresses or networks), each checked now so a
    typo stops the start rather than trusting nobody, or everybody."""
    import ipaddress

    entries = [item.strip() for item in items if item.strip()]
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ImproperlyConfigured(
                f"TRUSTED_PROXIES takes addresses or networks (10.0.0.0/8), not {entry!r}."
            ) from None
    return entries


ALLOWED_HOSTS = _comma_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = _comma_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    # Daphne first, so `runserver` serves ASGI (HTTP and websockets).
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "csp",
    "axes",
    # The project's apps, lowest layer first (docs/ARCHITECTURE.md).
    "observability",
    "n8n",
    "live",
    "accounts",
    "tasks",
    "chat",
]

MIDDLEWARE = [
    # Outermost: the dispatches a request asks for go to the pool once its
    # response is sent (tasks/outbound/dispatch.py).
    "tasks.outbound.dispatch.DispatchAfterResponseMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "chatproject.security.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its 429.
    "axes.middleware.AxesMiddleware",
    # Innermost and sync only: the whole chain runs in the request's thread
    # (chatproject/onethread.py).
    "chatproject.onethread.OneThreadMiddleware",
]

ROOT_URLCONF = "chatproject.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.theme",
            ],
        },
    },
]

WSGI_APPLICATION = None
ASGI_APPLICATION = "chatproject.asgi.application"

# --- Database -------------------------------------------------------------

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions serialise writers up front instead of failing with
    # "database is locked" half-way; WAL keeps readers from blocking writers.
    _db.setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # A file, not memory, so that test servers in other processes share it.
    _db["TEST"] = {"NAME": env.str("SQLITE_TEST_NAME", default=str(BASE_DIR / "test-db.sqlite3"))}
elif _db["ENGINE"] in ("django.db.backends.postgresql", "django.contrib.gis.db.backends.postgis"):
    if _db["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend, its pool checking a connection without a round trip
        # unless the server has spoken (chatproject/postgresql/base.py).
        _db["ENGINE"] = "chatproject.postgresql"
    # Under ASGI every request runs in its own thread, so CONN_MAX_AGE keeps
    # nothing: Django's pool does. Size it for Daphne's sync threads plus the
    # in-process dispatcher and worker (docs/OPERATIONS.md, "Database connections").
    _db["CONN_MAX_AGE"] = 0
    # With the pool this makes Django check a pooled connection before it is
    # handed out, so after a PostgreSQL restart an idle one no longer fails
    # once (a 500).
    _db["CONN_HEALTH_CHECKS"] = True
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DATABASE_POOL_MIN", default=2),
        "max_size": env.int("DATABASE_POOL_MAX", default=20),
        "timeout": 10,
    }
    # Prepared statements: values bound by the server (not spliced into the
    # SQL by psycopg), so a statement a connection runs a second time is
    # prepared and planned once for that connection. The hot paths run a few
    # statements whose planning costs more than running them (a send's facts:
    # about 1 ms to plan, 0.1 ms to run). The second time, not psycopg's
    # fifth: the pool hands its connections out in turn, so a statement
    # reaches a given connection only every few requests. Off behind a
    # transaction pooler (below).
    _db["OPTIONS"]["server_side_binding"] = True
    _db["OPTIONS"]["prepare_threshold"] = 1

# "transaction": DATABASE_URL points at a transaction-pooling PgBouncer, which
# lends a server connection for one transaction only. Nothing may then hold
# session state across transactions: no server-side cursors (Django's
# `.iterator()` would open one), no prepared statements (psycopg's
# prepare_threshold None, which is also Django's default). Migrations run
# through DATABASE_DIRECT_URL (make prod, docs/OPERATIONS.md, "PgBouncer").
DATABASE_POOLER = env.str("DATABASE_POOLER", default="")
if DATABASE_POOLER not in ("", "transaction"):
    raise ImproperlyConfigured(
        f"DATABASE_POOLER must be empty or transaction, not {DATABASE_POOLER!r}"
    )
if DATABASE_POOLER == "transaction":
    if _db["ENGINE"] == "django.db.backends.sqlite3":
        raise ImproperlyConfigured("DATABASE_POOLER=transaction needs a PostgreSQL DATABASE_URL.")
    _db["DISABLE_SERVER_SIDE_CURSORS"] = True
    _db["OPTIONS"]["prepare_threshold"] = None
    _db["OPTIONS"]["server_side_binding"] = False

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channels -------------------------------------------------------------

REDIS_URL = env.str("REDIS_URL", default="")
# "pubsub" (Redis pub/sub: one PUBLISH per group, fanned out inside each
# process; nothing kept for a process that is not listening) or "core"
# (channels-redis's default layer: per-channel queues with a capacity, four
# Redis round trips per group send and a polling receive). Pub/sub costs a
# streamed reply a quarter less CPU: see docs/PERFORMANCE.md.
CHANNEL_LAYER_KIND = env.str("CHANNEL_LAYER_KIND", default="pubsub")
if REDIS_URL and CHANNEL_LAYER_KIND == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                "prefix": env.str("CHANNEL_LAYER_PREFIX", default="chatproject"),
            },
        }
    }
elif REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                # The default capacity (100 per channel) drops bursts silently;
                # a socket that falls that far behind resyncs from the database.
                "capacity": env.int("CHANNEL_LAYER_CAPACITY", default=1000),
                "expiry": env.int("CHANNEL_LAYER_EXPIRY", default=60),
                "group_expiry": 86400,
                "prefix": env.str("CHANNEL_LAYER_PREFIX", default="chatproject"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": env.int("CHANNEL_LAYER_CAPACITY", default=1000)},
        }
    }

# --- Cache (rate-limit counters) ------------------------------------------------

CACHE_KEY_PREFIX = env.str("CACHE_KEY_PREFIX", default="chatproject")
# On Redis when REDIS_URL is set, so that limits hold across server processes;
# local memory otherwise (one process, as `make run` without REDIS_URL).
if REDIS_URL:
    CACHES = {
        "default": {
            # Django's RedisCache with one connection pool per process
            # (chatproject/cache.py).
            "BACKEND": "chatproject.cache.SharedPoolRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_KEY_PREFIX,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Sessions are stored in the database and read through the cache: a request
# of a signed-in user reads its session without an SQL statement (the cache is
# Redis when REDIS_URL is set, shared by every process; without it the one
# server process's memory). While the cache is unreachable, the database alone.
SESSION_ENGINE = "accounts.sessions"

# --- Abuse limits ---------------------------------------------------------------
# Rates use django-ratelimit's syntax (`20/m`: s, m, h, d); empty turns one off.

# The request header holding the client's address, set by the operator's proxy
# (e.g. `X-Real-IP`). Empty: REMOTE_ADDR. X-Forwarded-For is never trusted
# unless named here, and then only its last entry (the proxy's own).
CLIENT_IP_HEADER = env.str("CLIENT_IP_HEADER", default="")
# The header is read only when the connection comes from one of these
# (addresses or networks): from anyone else the connection's own address
# counts, so a client reaching Daphne directly cannot pick its address.
TRUSTED_PROXIES = trusted_proxies(_comma_list("TRUSTED_PROXIES", ["127.0.0.1", "::1"]))
CHAT_RATE_LIMIT = env.str("CHAT_RATE_LIMIT", default="20/m")
CONVERSATION_RATE_LIMIT = env.str("CONVERSATION_RATE_LIMIT", default="60/h")
SIGNUP_RATE_LIMIT = env.str("SIGNUP_RATE_LIMIT", default="20/h")
# Searches (GET /chat/search/ with a query) per user.
SEARCH_RATE_LIMIT = env.str("SEARCH_RATE_LIMIT", default="30/m")
# PostgreSQL cancels a search's statements after this long (SET LOCAL
# statement_timeout; 0: no limit) and the page says so in plain words.
SEARCH_TIMEOUT_SECONDS = env.float("SEARCH_TIMEOUT_SECONDS", default=2.0)
# Open websockets per user (0: no limit); the extra one is closed with 4429.
# Counted in Redis when REDIS_URL is set; a slot of a process that died
# without closing expires after WS_SLOT_TTL_SECONDS.
WS_PER_USER_LIMIT = env.int("WS_PER_USER_LIMIT", default=20)
WS_SLOT_TTL_SECONDS = env.float("WS_SLOT_TTL_SECONDS", default=60.0)
# Client frames per socket: a burst of WS_FRAME_BURST, then WS_FRAME_RATE per
# second (0: no limit); the excess is dropped with one error frame.
WS_FRAME_RATE = env.float("WS_FRAME_RATE", default=5.0)
WS_FRAME_BURST = env.int("WS_FRAME_BURST", default=20)
# The most bytes (UTF-8) of one server -> client frame. Daphne closes a socket
# (1011) that sends a message over 1,048,576 bytes, so no larger value is
# taken; a message.created past it is sent without its fragment (too_large)
# and the page fetches it over HTTP.
WS_FRAME_MAX_BYTES = env.int("WS_FRAME_MAX_BYTES", default=1_000_000)
if not 10_000 <= WS_FRAME_MAX_BYTES <= 1_048_576:
    raise ImproperlyConfigured("WS_FRAME_MAX_BYTES must be between 10000 and 1048576 bytes.")
# The most bytes of frames one `sync` answers; past it the answer ends with
# sync.reset and the page reloads.
WS_SYNC_MAX_BYTES = env.int("WS_SYNC_MAX_BYTES", default=2_000_000)
# Failed logins, per username and client address together (django-axes,
# counted in the database so every process sees them): past the limit that
# username is refused from that address (429 until the window has passed,
# even for the right password); other usernames behind the address, and the
# same username from other addresses, are not. Counting per username alone
# let anyone lock any account, the admin's included, from anywhere.
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_FAILURE_WINDOW_MINUTES = env.int("LOGIN_FAILURE_WINDOW_MINUTES", default=15)
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_FAILURE_WINDOW_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "accounts.limits.client_ip"
AXES_LOCKOUT_CALLABLE = "accounts.limits.login_lockout"
AXES_HTTP_RESPONSE_CODE = 429
# A success forgives that username's failures from that address
# (accounts.limits, connected in chat/apps.py), nothing else.
AXES_RESET_ON_SUCCESS = False
AXES_VERBOSE = False

# --- Auth -------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out login before a password is hashed.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/chat/"
LOGOUT_REDIRECT_URL = "login"
# Mail (password reset) through django-environ's email_url: `consolemail://`
# prints each mail to the server's output (the default), `smtp://user:pass@host:587`
# or `smtp+tls://…` in production, `filemail:///path` writes files, `memorymail://`
# keeps them in memory. Tests use Django's in-memory backend whatever is set.
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
if EMAIL_CONFIG.get("EMAIL_FILE_PATH"):
    # django-environ drops the path's leading slash; `filemail:///var/mail/x`
    # means the absolute /var/mail/x, as a file: URL would.
    EMAIL_CONFIG["EMAIL_FILE_PATH"] = "/" + EMAIL_CONFIG["EMAIL_FILE_PATH"].lstrip("/")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="chatproject@localhost")
# Password-reset requests (POSTs) per client address: each may send a mail.
PASSWORD_RESET_RATE_LIMIT = env.str("PASSWORD_RESET_RATE_LIMIT", default="10/h")
# How long a reset link works (Django's own setting, in seconds; 3 days by default).
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT", default=259200)

# --- I18N, static -----------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# Attachments (chat/files/): Django's default storage. A folder on this machine
# (MEDIA_ROOT) by default; STORAGE_URL names an S3-compatible bucket instead
# (django-storages), which several server machines can share:
#   s3://ACCESS_KEY:SECRET_KEY@bucket?endpoint_url=https://s3.example.com&region_name=eu-1
# Files are never served from MEDIA_ROOT directly: only /files/{id}/ (the
# owner, or a signed link) reads them.
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
STORAGE_URL = env.str("STORAGE_URL", default="")


def _default_storage(url):
    if not url:
        return {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    from urllib.parse import parse_qsl, unquote, urlsplit

    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.hostname:
        raise ImproperlyConfigured("STORAGE_URL must look like s3://KEY:SECRET@bucket?options")
    options = {
        "bucket_name": parts.hostname,
        "access_key": unquote(parts.username or ""),
        "secret_key": unquote(parts.password or ""),
        "querystring_auth": True,
        "file_overwrite": False,
        "default_acl": None,
    }
    allowed = {"endpoint_url", "region_name", "location", "addressing_style", "signature_version"}
    for key, value in parse_qsl(parts.query):
        if key not in allowed:
            raise ImproperlyConfigured(f"STORAGE_URL: unknown option {key!r}")
        options[key] = value
    return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}


STORAGES = {
    "default": _default_storage(STORAGE_URL),
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "chatproject.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=DEBUG)

# --- Security (safe production defaults; relaxed only when DEBUG is on) -----

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
# Everything the pages load comes from this origin: no inline script or style,
# no frames, no plugins; websockets go back to the same host ('self').
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
PERMISSIONS_POLICY = (
    "camera=(), microphone=(), geolocation=(), payment=(), usb=(), "
    "interest-cohort=(), browsing-topics=()"
)
# Origins (scheme://host[:port]) allowed to open websockets besides the one the
# browser used to reach this server, CSRF_TRUSTED_ORIGINS and PUBLIC_BASE_URL.
WEBSOCKET_ALLOWED_ORIGINS = _comma_list("WEBSOCKET_ALLOWED_ORIGINS", [])

# --- n8n and tasks ------------------------------------------------------------

_run_addr_url = base_url_from_run_addr(env.str("RUN_ADDR", default=""))
PUBLIC_BASE_URL = (env.str("PUBLIC_BASE_URL", default="") or _run_addr_url).rstrip("/")
N8N_BASE_URL = env.str("N8N_BASE_URL", default="").rstrip("/")
N8N_WEBHOOK_SECRET = env.str("N8N_WEBHOOK_SECRET", default="")
# Standard Webhooks signing of dispatches (n8n/signing.py): `whsec_` + base64
# of random bytes. Unset: no signature headers.
N8N_WEBHOOK_SIGNING_SECRET = env.str("N8N_WEBHOOK_SIGNING_SECRET", default="")
# n8n's public API key (Settings → n8n API): n8n_setup, and stopping executions.
N8N_API_KEY = env.str("N8N_API_KEY", default="")
# n8n_setup creates chat-reply.json's model credential (OpenAI-compatible)
# from these when n8n has none: the server's /v1 base URL and its key.
N8N_MODEL_BASE_URL = env.str("N8N_MODEL_BASE_URL", default="")
N8N_MODEL_API_KEY = env.str("N8N_MODEL_API_KEY", default="")
N8N_CHAT_WORKFLOW = env.str("N8N_CHAT_WORKFLOW", default="chat-reply")
# Webhook path of the feedback workflow (n8n/feedback.json ships one as
# `chat-feedback`). Unset: ratings are stored on the reply and no task is made.
N8N_FEEDBACK_WORKFLOW = env.str("N8N_FEEDBACK_WORKFLOW", default="")
TASK_TIMEOUT_SECONDS = env.int("TASK_TIMEOUT_SECONDS", default=120)
TASK_WEBHOOK_MAX_BYTES = env.int("TASK_WEBHOOK_MAX_BYTES", default=1048576)
# Callback JSON nested deeper than this is refused (400): pages, the admin and
# the database walk stored values, and none of them should meet a 1,000-deep list.
TASK_WEBHOOK_MAX_DEPTH = env.int("TASK_WEBHOOK_MAX_DEPTH", default=32)
# Every other request body (Django's own setting, default 2.5 MiB). Daphne
# refuses larger bodies with 413 before reading them (chatproject/bodylimit.py).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2621440)
# Dispatch: bounded time-outs, retries with exponential backoff and jitter.
TASK_DISPATCH_CONNECT_TIMEOUT = env.float("TASK_DISPATCH_CONNECT_TIMEOUT", default=3.0)
TASK_DISPATCH_READ_TIMEOUT = env.float("TASK_DISPATCH_READ_TIMEOUT", default=10.0)
# 0: retry until the task's deadline (created_at + its timeout); N: at most N tries.
TASK_DISPATCH_MAX_ATTEMPTS = env.int("TASK_DISPATCH_MAX_ATTEMPTS", default=0)
TASK_DISPATCH_BACKOFF_SECONDS = env.float("TASK_DISPATCH_BACKOFF_SECONDS", default=1.0)
TASK_DISPATCH_BACKOFF_MAX_SECONDS = env.float("TASK_DISPATCH_BACKOFF_MAX_SECONDS", default=30.0)
# A claim lasts this long; a dispatcher that dies holding one frees the task
# for the worker when it lapses. Longer than connect + read time-out.
TASK_DISPATCH_LEASE_SECONDS = env.float("TASK_DISPATCH_LEASE_SECONDS", default=60.0)
# The in-process dispatcher right after the commit: threads, and how many
# tasks may wait for one (beyond that the worker picks them up).
TASK_DISPATCH_THREADS = env.int("TASK_DISPATCH_THREADS", default=16)
TASK_DISPATCH_QUEUE_MAX = env.int("TASK_DISPATCH_QUEUE_MAX", default=200)
# Rows of async_task_events kept per task (progress within one step shares a
# row; past the cap only the final event is still written).
TASK_EVENTS_MAX_PER_TASK = env.int("TASK_EVENTS_MAX_PER_TASK", default=100)
# The worker asks n8n's API (with N8N_API_KEY) about a processing task that
# has not changed for this long (tasks/outbound/reconcile.py).
TASK_RECONCILE_AFTER_SECONDS = env.float("TASK_RECONCILE_AFTER_SECONDS", default=30.0)
# The most of n8n's answer about one execution that reconciliation reads (its
# run data included); a larger answer fails the task, in plain words.
TASK_RECONCILE_MAX_BYTES = env.int("TASK_RECONCILE_MAX_BYTES", default=16_777_216)
# /healthz fails when the newest worker heartbeat is older than this.
TASKS_WORKER_HEARTBEAT_MAX_AGE = env.float("TASKS_WORKER_HEARTBEAT_MAX_AGE", default=30.0)
# Seconds between two passes of the worker loop.
TASKS_WORKER_POLL_SECONDS = env.float("TASKS_WORKER_POLL_SECONDS", default=1.0)
# Run the worker loop inside the web process (make run sets it when REDIS_URL
# is unset, since the in-memory channel layer cannot cross processes).
TASKS_WORKER_IN_PROCESS = env.bool("TASKS_WORKER_IN_PROCESS", default=False)
# Seconds the development runner pauses between its callbacks.
DEV_RUNNER_STEP_SECONDS = env.float("DEV_RUNNER_STEP_SECONDS", default=0.6)
# Seconds it pauses between the words it streams (`delta` callbacks).
DEV_RUNNER_WORD_SECONDS = env.float("DEV_RUNNER_WORD_SECONDS", default=0.06)
# Off: it sends no `delta`s, only `processing` and `completed` (tests that count callbacks).
DEV_RUNNER_STREAM = env.bool("DEV_RUNNER_STREAM", default=True)

# --- Streaming replies -------------------------------------------------------------
# One `delta` of a callback: at most this many characters (longer: 400).
TASK_DELTA_MAX_CHARS = env.int("TASK_DELTA_MAX_CHARS", default=32_000)
# A task's partial reply keeps at most this many characters (a task type may
# set its own bound; chat uses CHAT_REPLY_MAX_LENGTH); text past it is dropped.
TASK_PARTIAL_TEXT_MAX_CHARS = env.int("TASK_PARTIAL_TEXT_MAX_CHARS", default=100_000)
# At most one `message.delta` frame per task per this many seconds (the first
# piece goes out at once; what comes meanwhile is sent together).
TASK_DELTA_FRAME_SECONDS = env.float("TASK_DELTA_FRAME_SECONDS", default=0.05)
# A chat reply being written is formatted (its Markdown rendered by the server,
# chat/markdown/streaming.py) at most every this many seconds; 0 turns formatting off.
CHAT_STREAM_RENDER_SECONDS = env.float("CHAT_STREAM_RENDER_SECONDS", default=0.2)
# Dispatch from the event-loop thread that reads n8n's streamed answers as they
# come (off: the same request from the dispatch pool's thread, its answer read
# whole, so no streamed text is shown).
TASK_STREAM_READER = env.bool("TASK_STREAM_READER", default=True)
# Streamed text is written at most this far behind (the first piece at once).
TASK_STREAM_FLUSH_SECONDS = env.float("TASK_STREAM_FLUSH_SECONDS", default=0.1)
# Threads (so database connections) that write streamed text, per process.
TASK_STREAM_WRITERS = env.int("TASK_STREAM_WRITERS", default=4)
# Open connections to n8n per process (streams included); beyond, a dispatch waits.
TASK_STREAMS_MAX = env.int("TASK_STREAMS_MAX", default=1000)

# --- Chat -----------------------------------------------------------------------

CHAT_MESSAGE_MAX_LENGTH = env.int("CHAT_MESSAGE_MAX_LENGTH", default=8000)
# Files sent with a message (or returned by a workflow with its reply): each at
# most ATTACHMENT_MAX_BYTES, at most ATTACHMENT_MAX_FILES per message, of the
# ATTACHMENT_TYPES (types and `type/*` globs, read from the content).
ATTACHMENT_MAX_BYTES = env.int("ATTACHMENT_MAX_BYTES", default=10 * 1024 * 1024)
ATTACHMENT_MAX_FILES = env.int("ATTACHMENT_MAX_FILES", default=5)
ATTACHMENT_TYPES = env.str(
    "ATTACHMENT_TYPES",
    default=(
        "image/*,application/pdf,text/*,application/json,"
        "application/msword,application/vnd.openxmlformats-officedocument.*,"
        "application/vnd.ms-excel,application/vnd.ms-powerpoint,"
        "application/vnd.oasis.opendocument.*,application/rtf"
    ),
)
# A reply longer than this fails its task with plain words instead of being stored.
CHAT_REPLY_MAX_LENGTH = env.int("CHAT_REPLY_MAX_LENGTH", default=100_000)
# A reply's `thinking` keeps at most this many characters; the rest is cut with
# a note saying so (the reply itself is still stored).
CHAT_THINKING_MAX_LENGTH = env.int("CHAT_THINKING_MAX_LENGTH", default=100_000)
CHAT_HISTORY_LIMIT = env.int("CHAT_HISTORY_LIMIT", default=20)
CHAT_PAGE_SIZE = env.int("CHAT_PAGE_SIZE", default=50)
# Share links (/s/{token}/): links made per user (SHARE_RATE_LIMIT), links
# turned on at once per conversation and per user (past them: 409 until some
# are turned off), and the most messages a shared page shows (the latest of
# the shared branch; the page says when earlier ones are left out).
SHARE_RATE_LIMIT = env.str("SHARE_RATE_LIMIT", default="30/h")
SHARE_MAX_PER_CONVERSATION = env.int("SHARE_MAX_PER_CONVERSATION", default=20)
SHARE_MAX_PER_USER = env.int("SHARE_MAX_PER_USER", default=500)
SHARE_MAX_MESSAGES = env.int("SHARE_MAX_MESSAGES", default=500)
# Ratings (👍/👎 with an optional comment) per user.
FEEDBACK_RATE_LIMIT = env.str("FEEDBACK_RATE_LIMIT", default="30/m")

# --- Operations: metrics and logs --------------------------------------------------

# /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`; unset: 404.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# prometheus-client's multiprocess mode: every process (Daphne processes, the
# worker) writes its metrics to files here and /metrics sums them. Read by
# prometheus-client itself from the environment; empty the directory before
# the processes start (docs/OPERATIONS.md, "Metrics").
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
if PROMETHEUS_MULTIPROC_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = PROMETHEUS_MULTIPROC_DIR
    Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)

# "plain" (a line for people, the extra fields as key=value) or "json" (one
# JSON object per line, the extra fields as keys): chatproject/logformat.py.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"()": "chatproject.logformat.PlainFormatter"},
        "json": {"()": "chatproject.logformat.json_formatter"},
    },
    "filters": {"request_without_query": {"()": "chatproject.logformat.RequestWithoutQuery"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_without_query"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        # httpx logs every request's URL as given, credentials included; the
        # dispatcher and the n8n adapter log their own lines without them.
        "httpx": {"level": "WARNING"},
    },
}
