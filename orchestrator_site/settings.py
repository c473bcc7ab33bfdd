"""Settings from the environment with a working embedded default (SQLite, in-memory layer, local-memory cache).

DATABASE_URL switches the database (e.g. postgres://postgres@127.0.0.1:5432/test); REDIS_URL switches the channel
layer to channels_redis and the cache to Redis.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
import plotly

from orchestrator_site.environment import env_bool, env_float, env_int, env_list, env_str, local_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("ORCHESTRATOR_VAR_DIR", str(BASE_DIR / "var")))

# Off unless asked for: with DEBUG on, an error page shows settings, source and local variables (stored secrets).
# `make demo` turns it on; the test settings bring their own key.
DEBUG = env_bool("DEBUG", False)
# Production sets SECRET_KEY. Without it (a fresh clone, the demo, management commands) a key is generated once into
# VAR_DIR for local use; `manage.py check --deploy` warns while that one is in use (orchestrator_site/deploy_checks.py).
SECRET_KEY = env_str("SECRET_KEY", "")
SECRET_KEY_IS_LOCAL = not SECRET_KEY
if SECRET_KEY_IS_LOCAL:
    SECRET_KEY = local_secret_key(VAR_DIR)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
# Origins trusted for forms and WebSockets besides the page's own (e.g. https://orchestrator.example behind a TLS
# proxy). `serve` adds those of the host and port it listens on (orchestrator_site/trusted_origins.py); no fixed
# port here, or a page of whatever else runs on that port would be trusted.
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# HTTPS deployments (behind a TLS-terminating proxy): secure cookies by default outside DEBUG; HSTS and the redirect
# when asked for. `manage.py check --deploy` is clean with SECURE_SSL_REDIRECT=1 SECURE_HSTS_SECONDS=31536000
# SECURE_HSTS_INCLUDE_SUBDOMAINS=1 SECURE_HSTS_PRELOAD=1 and a real SECRET_KEY.
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    # Only behind a proxy that sets X-Forwarded-Proto itself (and strips it from clients).
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "registry",
    "pipeline",
    "health",
    "fusion",
    "coordinator",
    "mcp_endpoint",
    # The wiring layer: the serve command and the demo.
    "orchestrator_site",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Early in the list, so it sees every response last (errors and CSRF failures included).
    "orchestrator_site.security_headers.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # An API body over DATA_UPLOAD_MAX_MEMORY_SIZE answers a JSON 413 (it handles the view's exception).
    "orchestrator_site.oversized_requests.OversizedRequestAsJSONMiddleware",
]

ROOT_URLCONF = "orchestrator_site.urls"
ASGI_APPLICATION = "orchestrator_site.asgi.application"

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
            ],
        },
    },
]

_sqlite_path = VAR_DIR / "orchestrator.sqlite3"
# var/ holds the SQLite file (secrets, API tokens) and the demo password: private to the user running us.
VAR_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
VAR_DIR.chmod(0o700)
DATABASES = {"default": dj_database_url.parse(env_str("DATABASE_URL", f"sqlite:///{_sqlite_path}"), conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The orchestration loops and the web requests write concurrently: WAL lets readers go on during a write,
    # IMMEDIATE takes the write lock up front instead of failing with "database is locked" on upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }


def redis_channel_layer(url: str) -> dict:
    """channels_redis on `url`. Its receive blocks 5 s in BZPOPMIN on an idle channel, and redis-py 8 times every
    socket read out after 5 s by default: the read lost that race and a WebSocket consumer died with TimeoutError
    after 5 quiet seconds. Reads here wait longer than the block."""
    return {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [{"address": url, "socket_timeout": 15}]},
    }


REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {"default": redis_channel_layer(REDIS_URL)}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    # In-memory does not cross processes: in the embedded mode the loops run inside the web process.
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Plotly's JavaScript comes from the plotly package (no CDN): {% static "plotly/plotly.min.js" %}.
STATICFILES_DIRS = [BASE_DIR / "static", ("plotly", str(Path(plotly.__file__).parent / "package_data"))]
STATIC_ROOT = VAR_DIR / "staticfiles"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "registry:overview"
LOGOUT_REDIRECT_URL = "login"

REST_FRAMEWORK = {
    # Token first: an unauthenticated API call then gets 401 with a WWW-Authenticate header, not a bare 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["registry.permissions.IsViewer"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "orchestrator_site.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_PARSER_CLASSES": [
        "orchestrator_site.json_limits.LimitedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("API_THROTTLE_ANON", "120/min"),
        "user": env_str("API_THROTTLE_USER", "6000/min"),
    },
}
# Request bodies: a JSON body above this size or nested deeper answers 400 (an import of 1,000 servers is ~1 MB).
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 5 * 1024 * 1024)
# The serving path (tool calls, resource reads) answers who is calling from a per-process cache for this long: a
# revoked token or a changed role takes effect within it in other processes (at once in the one where it changed).
API_CALLER_CACHE_SECONDS = env_float("API_CALLER_CACHE_SECONDS", 5.0)
# ...and the server definition and tool schemas it calls from a cache of this age (cleared in-process on change).
API_SERVER_CACHE_SECONDS = env_float("API_SERVER_CACHE_SECONDS", 2.0)
API_MAX_JSON_DEPTH = env_int("API_MAX_JSON_DEPTH", 64)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES

# Failed logins (login page and token endpoint) within the window: per account from one client address, per account
# from all addresses together (larger: a guesser at one address must not lock the owner out from another), and per
# client address over all accounts. See orchestrator_site/login_throttle.py.
LOGIN_THROTTLE_FAILURES_PER_ACCOUNT = env_int("LOGIN_THROTTLE_FAILURES_PER_ACCOUNT", 10)
LOGIN_THROTTLE_FAILURES_PER_ACCOUNT_TOTAL = env_int("LOGIN_THROTTLE_FAILURES_PER_ACCOUNT_TOTAL", 100)
LOGIN_THROTTLE_FAILURES_PER_ADDRESS = env_int("LOGIN_THROTTLE_FAILURES_PER_ADDRESS", 50)
LOGIN_THROTTLE_WINDOW_SECONDS = env_int("LOGIN_THROTTLE_WINDOW_SECONDS", 15 * 60)

SPECTACULAR_SETTINGS = {
    "TITLE": "MCP Orchestrator API",
    "DESCRIPTION": "Registry, health, fusion, pipeline and coordination of a fleet of MCP servers.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["registry.permissions.IsViewer"],
    # The docs page must work offline: the UI assets come from the sidecar package, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    # One name for a choice set used by several models.
    "ENUM_NAME_OVERRIDES": {
        "SeverityEnum": "health.models.Severity",
        "LatencySourceEnum": "health.api.LATENCY_SOURCES",
    },
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "orchestrator_site.api_schema.document_errors",
    ],
}

# The MCP connection layer.
MCP_CONNECT_TIMEOUT_SECONDS = float(env_int("MCP_CONNECT_TIMEOUT_SECONDS", 20))
# At most this many connects in their handshake at once (a restart with a thousand servers is not a thousand
# handshakes sharing the CPU, all timing out together); a slot is held at most MCP_CONNECT_SLOT_SECONDS.
MCP_CONNECTS_AT_ONCE = env_int("MCP_CONNECTS_AT_ONCE", 32)
MCP_CONNECT_SLOT_SECONDS = env_float("MCP_CONNECT_SLOT_SECONDS", 2.0)
# Reconnects back off exponentially (with jitter) from the initial delay up to the maximum.
MCP_RECONNECT_INITIAL_SECONDS = float(env_int("MCP_RECONNECT_INITIAL_SECONDS", 1))
MCP_RECONNECT_MAX_SECONDS = float(env_int("MCP_RECONNECT_MAX_SECONDS", 30))
# Call outcomes are buffered and written in batches so SQLite is not hit once per MCP call.
MCP_CALL_RECORD_FLUSH_SECONDS = float(env_int("MCP_CALL_RECORD_FLUSH_SECONDS", 2))
# What one server may send (mcp_client/limits.py): a message over MCP_MAX_MESSAGE_BYTES is refused while it
# streams in (never held whole) and a result whose content is over MCP_MAX_RESULT_BYTES is refused once parsed; the
# call fails with "answer too large (N bytes, limit M)" and the session goes on. Notifications (and requests a server
# sends on its own) beyond MCP_MAX_NOTIFICATIONS_PER_SECOND, after a burst of MCP_NOTIFICATION_BURST, are dropped and
# counted, with one log line per window.
MCP_MAX_MESSAGE_BYTES = env_int("MCP_MAX_MESSAGE_BYTES", 8 * 1024 * 1024)
MCP_MAX_RESULT_BYTES = env_int("MCP_MAX_RESULT_BYTES", 4 * 1024 * 1024)
MCP_MAX_NOTIFICATIONS_PER_SECOND = env_float("MCP_MAX_NOTIFICATIONS_PER_SECOND", 200.0)
MCP_NOTIFICATION_BURST = env_int("MCP_NOTIFICATION_BURST", 1000)
# What a discovery keeps of a server's tool, resource, template and prompt lists: at most this many entries per list,
# no entry whose JSON is over MCP_MAX_CAPABILITY_BYTES (dropped, with the reason), at most this much JSON per list.
# A server listing more is shown truncated ("showing 1,000 of more than 5,000 tools"), never stored whole.
MCP_MAX_CAPABILITIES_PER_LIST = env_int("MCP_MAX_CAPABILITIES_PER_LIST", 1_000)
MCP_MAX_CAPABILITY_BYTES = env_int("MCP_MAX_CAPABILITY_BYTES", 64 * 1024)
MCP_MAX_CAPABILITY_LIST_BYTES = env_int("MCP_MAX_CAPABILITY_LIST_BYTES", 4 * 1024 * 1024)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # Every record of every logger (the SDK's, httpx2's, uvicorn's included) is scrubbed of the secret values the
    # MCP connection layer knows; the filter also hooks record creation, so handlers added elsewhere see it scrubbed.
    "filters": {
        "secrets": {"()": "mcp_client.redaction.SecretsFilter"},
        "denied_without_traceback": {"()": "orchestrator_site.request_logging.DeniedWithoutTraceback"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["secrets"]}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "mcp": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        # One INFO line per MCP request over HTTP would drown everything else.
        "httpx2": {"level": "WARNING"},
        "uvicorn": {"level": "WARNING"},
        # A refused request (403) is one line, not a traceback.
        "django.request": {"filters": ["denied_without_traceback"]},
    },
}

# Outbound address policy: the networks that MCP server URLs (and webhooks) may reach. Entries are CIDR networks,
# single addresses or `public` (every globally routable address). Loopback only by default: the demo fleet runs there.
OUTBOUND_ALLOWED_NETWORKS = env_list("OUTBOUND_ALLOWED_NETWORKS", ["127.0.0.0/8", "::1/128"])

# OAuth (servers behind the MCP authorization flow, registry/oauth_*.py). The key that encrypts tokens, refresh tokens
# and client secrets at rest: Fernet keys, comma-separated to rotate (the first encrypts). Without it one is generated
# once into VAR_DIR (oauth-token-key.txt), as the secret key is.
OAUTH_TOKEN_KEY = env_str("OAUTH_TOKEN_KEY", "")
# The callback URL given to authorization servers; empty: this site's /oauth/callback/ as the person's browser sees
# it (set it when a proxy changes the host, or to the URL a pre-registered client was registered with).
OAUTH_REDIRECT_URI = env_str("OAUTH_REDIRECT_URI", "")
# stdio servers run a command on this machine (admins only). When set, only these exact commands may be registered.
MCP_STDIO_COMMAND_ALLOWLIST = env_list("MCP_STDIO_COMMAND_ALLOWLIST", [])
# The fleet supervisor keeps the sessions matched to the registry (liveness checks are health's: HEALTH_* below). A
# full reconcile runs on every change and, as a safety net for changes made by other processes, every
# FLEET_RECONCILE_SECONDS.
FLEET_RECONCILE_SECONDS = float(env_int("FLEET_RECONCILE_SECONDS", 30))
# New sessions are discovered this many at a time (after a restart every one of them wants a discovery).
FLEET_DISCOVERIES_AT_ONCE = env_int("FLEET_DISCOVERIES_AT_ONCE", 16)
# Call records (every MCP request but the routine liveness checks) are kept this long, pruned in batches.
MCP_CALL_RECORD_RETENTION_DAYS = env_int("MCP_CALL_RECORD_RETENTION_DAYS", 7)
# A server's "last seen" is stored when it moved forward by this much (it moves with every successful request).
MCP_LAST_SEEN_RESOLUTION_SECONDS = env_float("MCP_LAST_SEEN_RESOLUTION_SECONDS", 30.0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Tests get a file, not Django's shared-cache in-memory database: the fleet's database thread and the test thread
    # write at once, and only a file has WAL and a busy timeout (shared cache answers "table is locked" at once).
    # One per process, so concurrent test runs do not share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}

# -- the event pipeline ---------------------------------------------------------------------------------------------
# History: kept per stream for at most this long and at most this many events (the database on the embedded
# default, Redis Streams when REDIS_URL is set).
PIPELINE_RETENTION_SECONDS = env_float("PIPELINE_RETENTION_SECONDS", 24 * 3600.0)
PIPELINE_RETENTION_PER_STREAM = env_int("PIPELINE_RETENTION_PER_STREAM", 10_000)
PIPELINE_REDIS_PREFIX = env_str("PIPELINE_REDIS_PREFIX", "pipeline:")
# Every bus subscriber's queue bound, and how long the bus waits once for a full one before dropping its oldest.
PIPELINE_SUBSCRIBER_QUEUE = env_int("PIPELINE_SUBSCRIBER_QUEUE", 10_000)
PIPELINE_SLOW_SUBSCRIBER_WAIT_SECONDS = env_float("PIPELINE_SLOW_SUBSCRIBER_WAIT_SECONDS", 0.05)
# Browsers: leading-edge batching. A socket that sent no frame within this window sends an event at once; events
# arriving within it after a frame wait until it is over and go as one frame (at most about one frame per window
# on a busy socket), or sooner at this many events.
PIPELINE_SOCKET_BATCH_SECONDS = env_float("PIPELINE_SOCKET_BATCH_SECONDS", 0.05)
PIPELINE_SOCKET_BATCH_MAX = env_int("PIPELINE_SOCKET_BATCH_MAX", 500)
# A paused socket keeps at most this many events, then loses the oldest (and is told how many on continue).
PIPELINE_SOCKET_BUFFER = env_int("PIPELINE_SOCKET_BUFFER", 5_000)
# Quotes older than this are left out of spreads.
PIPELINE_QUOTE_STALE_SECONDS = env_float("PIPELINE_QUOTE_STALE_SECONDS", 15.0)

# -- the health monitor ---------------------------------------------------------------------------------------------
# Checks: every server on its own interval (tunable per server in its metadata, `health`), damped: this many failed
# checks are tolerated (pending) before a server is down, this many good ones before it is back.
HEALTH_CHECK_INTERVAL_SECONDS = env_float("HEALTH_CHECK_INTERVAL_SECONDS", 10.0)
HEALTH_CHECK_TIMEOUT_SECONDS = env_float("HEALTH_CHECK_TIMEOUT_SECONDS", 5.0)
HEALTH_RETRIES = env_int("HEALTH_RETRIES", 2)
HEALTH_RECOVER_AFTER = env_int("HEALTH_RECOVER_AFTER", 2)
HEALTH_LATENCY_TARGET_MS = env_float("HEALTH_LATENCY_TARGET_MS", 1_000.0)
# Retention: raw samples, minute rollups, hour rollups.
HEALTH_RAW_RETENTION_SECONDS = env_float("HEALTH_RAW_RETENTION_SECONDS", 24 * 3600.0)
HEALTH_MINUTE_RETENTION_SECONDS = env_float("HEALTH_MINUTE_RETENTION_SECONDS", 7 * 24 * 3600.0)
HEALTH_HOUR_RETENTION_SECONDS = env_float("HEALTH_HOUR_RETENTION_SECONDS", 90 * 24 * 3600.0)
# Trends: the window the latency regression looks at.
HEALTH_TREND_WINDOW_SECONDS = env_float("HEALTH_TREND_WINDOW_SECONDS", 1_800.0)
# Alerts: how often rules are evaluated; Python callables a notification channel may name ({"name": "dotted.path"}).
HEALTH_ALERT_EVALUATION_SECONDS = env_float("HEALTH_ALERT_EVALUATION_SECONDS", 2.0)
HEALTH_ALERT_CALLABLES: dict[str, str] = {}
HEALTH_WEBHOOK_TIMEOUT_SECONDS = env_float("HEALTH_WEBHOOK_TIMEOUT_SECONDS", 5.0)
HEALTH_WEBHOOK_MAX_ATTEMPTS = env_int("HEALTH_WEBHOOK_MAX_ATTEMPTS", 5)

# --- fusion ---------------------------------------------------------------------------------------------------
FUSION_DEFAULT_STRATEGY = env_str("FUSION_DEFAULT_STRATEGY", "median")
FUSION_DEFAULT_TIMEOUT_SECONDS = env_float("FUSION_DEFAULT_TIMEOUT_SECONDS", 5.0)
# Quality: a source this slow (or an answer this old) counts half.
FUSION_LATENCY_REFERENCE_MS = env_float("FUSION_LATENCY_REFERENCE_MS", 500.0)
FUSION_FRESHNESS_REFERENCE_MS = env_float("FUSION_FRESHNESS_REFERENCE_MS", 10_000.0)
# Trust: where a new source starts, how fast it learns, how fast an old lesson fades (back to the prior).
FUSION_TRUST_PRIOR = env_float("FUSION_TRUST_PRIOR", 0.8)
FUSION_TRUST_LEARNING_RATE = env_float("FUSION_TRUST_LEARNING_RATE", 0.1)
FUSION_TRUST_HALF_LIFE_HOURS = env_float("FUSION_TRUST_HALF_LIFE_HOURS", 24.0)
# An answer within this many basis points of the result agrees with it; fewer valid answers teach no trust.
FUSION_AGREEMENT_BPS = env_float("FUSION_AGREEMENT_BPS", 10.0)
FUSION_TRUST_MIN_ANSWERS = env_int("FUSION_TRUST_MIN_ANSWERS", 3)
FUSION_RUN_RETENTION_DAYS = env_int("FUSION_RUN_RETENTION_DAYS", 7)
# More strategies: dotted paths to fusion.strategies.Strategy instances or classes, registered by their name.
FUSION_STRATEGIES: list[str] = env_list("FUSION_STRATEGIES", [])

# --- coordinator ----------------------------------------------------------------------------------------------
# Each participant call's timeout; how long phase two keeps retrying before a transaction is left "in doubt" (the
# next start's recovery, or an admin's, finishes it).
COORDINATOR_CALL_TIMEOUT_SECONDS = env_float("COORDINATOR_CALL_TIMEOUT_SECONDS", 5.0)
COORDINATOR_PHASE_TWO_SECONDS = env_float("COORDINATOR_PHASE_TWO_SECONDS", 30.0)
# An arbitrage opportunity executes only from quotes at most this old (coordinator/opportunity_checks.py).
COORDINATOR_EXECUTE_MAX_AGE_SECONDS = env_float("COORDINATOR_EXECUTE_MAX_AGE_SECONDS", 30.0)

# --- the MCP endpoint (/mcp/ and /mcp/servers/<name>/, mcp_endpoint/) -------------------------------------------
# Open Streamable HTTP sessions (2025-era clients; the 2026 era has none) per endpoint and process: one more gets a
# 503 until one ends. A session with no request in flight and no open GET stream for MCP_ENDPOINT_SESSION_IDLE_SECONDS
# is closed (its client then starts a new one): an agent that vanished without DELETE does not hold memory forever.
MCP_ENDPOINT_MAX_SESSIONS = env_int("MCP_ENDPOINT_MAX_SESSIONS", 1_000)
MCP_ENDPOINT_SESSION_IDLE_SECONDS = env_float("MCP_ENDPOINT_SESSION_IDLE_SECONDS", 30 * 60.0)
# A request body above this size answers 413 before it is parsed (a tool call's arguments, as the REST API's).
MCP_ENDPOINT_MAX_BODY_BYTES = env_int("MCP_ENDPOINT_MAX_BODY_BYTES", API_MAX_BODY_BYTES)
MCP_ENDPOINT_TRANSACTION_TOOLS = False  # True: /mcp/ offers coordinator__execute_opportunity (it trades)
