"""Settings, all read from the environment (django-environ).

Nothing is needed to start: the defaults give a development service on a SQLite file in WAL mode
with the offline `stub` provider. Production sets at least SECRET_KEY, DEBUG=false,
ALLOWED_HOSTS and DATABASE_URL (PostgreSQL).
"""
import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
DEV_SECRET_KEY = "arkloop-development-secret-key-do-not-use-in-production"

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default=DEV_SECRET_KEY)
if not DEBUG and SECRET_KEY == DEV_SECRET_KEY:
    raise ImproperlyConfigured("DEBUG is off: set SECRET_KEY to a secret value, not the development key.")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "arkloop",
    "threads",
    "personas",
    "runs",
    "webhooks",
    "mcp_servers",
]

MIDDLEWARE = [
    "arkloop.middleware.RequestMetricsMiddleware",
    "arkloop.middleware.TraceIdMiddleware",
    "arkloop.middleware.ApiErrorMiddleware",
    "arkloop.idempotency.IdempotencyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

AUTH_USER_MODEL = "arkloop.User"
ROOT_URLCONF = "arkloop.urls"
APPEND_SLASH = False

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

WSGI_APPLICATION = "arkloop.wsgi.application"
ASGI_APPLICATION = "arkloop.asgi.application"


def _database_config() -> dict:
    """The default database: DATABASE_URL, else a SQLite file beside manage.py (WAL mode)."""
    config = env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
    if config["ENGINE"] == "django.db.backends.sqlite3":
        options = config.setdefault("OPTIONS", {})
        # WAL lets the API, the stream and the runner read while one of them writes; IMMEDIATE
        # transactions take the write lock up front, so two writers queue instead of deadlocking.
        options.setdefault("init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
        options.setdefault("timeout", env.int("ARKLOOP_SQLITE_BUSY_TIMEOUT", default=20))
        options.setdefault("transaction_mode", "IMMEDIATE")
        # A file (not :memory:) so test subprocesses (Daphne, runners) share it; one per test process.
        config["TEST"] = {"NAME": f"/tmp/arkloop-test-{os.getpid()}.sqlite3"}
    else:
        config.setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=0))
        _postgres_pool(config)
    return config


def _postgres_pool(config: dict) -> None:
    """psycopg's connection pool, one per process: no new PostgreSQL session per request.

    Without a pool (CONN_MAX_AGE is 0) each request connects and disconnects. Long-lived threads
    keep their pooled connection (the stream's 4 query workers, a runner's 3–4 DB threads); the
    ARKLOOP_REQUEST_THREADS (16) request threads borrow one per request, so max_size must exceed
    the long-lived ones and should cover the request threads too (20 = 16 + 4); a
    request that finds the pool exhausted waits up to `timeout` seconds. min_size is 0 so a
    process opens only what it uses. ARKLOOP_DB_POOL_MAX_SIZE=0 turns the pool off (then
    CONN_MAX_AGE applies); a pool cannot be combined with CONN_MAX_AGE > 0.
    """
    max_size = env.int("ARKLOOP_DB_POOL_MAX_SIZE", default=20)
    if max_size <= 0 or config["CONN_MAX_AGE"]:
        return
    config.setdefault("OPTIONS", {})["pool"] = {
        "min_size": 0, "max_size": max_size,
        "timeout": env.float("ARKLOOP_DB_POOL_TIMEOUT", default=10.0),
    }
    # The pool hands out only connections that answer an empty query (one round trip, no new
    # session), and a dead one gets every idle one checked at once (arkloop/postgresql/base.py):
    # a PostgreSQL restart or pg_terminate_backend costs no request an error.
    config["CONN_HEALTH_CHECKS"] = True
    if config["ENGINE"] == "django.db.backends.postgresql":
        config["ENGINE"] = "arkloop.postgresql"


DATABASES = {"default": _database_config()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# Arkloop's own settings (SPEC §9).
ARKLOOP_MAX_BODY_BYTES = env.int("ARKLOOP_MAX_BODY_BYTES", default=1024 * 1024)
ARKLOOP_ACCESS_TOKEN_TTL_SECONDS = env.int("ARKLOOP_ACCESS_TOKEN_TTL_SECONDS", default=900)
# How long a process remembers an API key's principal (arkloop.authentication; 0 = every request asks).
ARKLOOP_AUTH_CACHE_SECONDS = env.float("ARKLOOP_AUTH_CACHE_SECONDS", default=5.0)
ARKLOOP_MAX_CONCURRENT_RUNS_PER_ORG = env.int("ARKLOOP_MAX_CONCURRENT_RUNS_PER_ORG", default=10)
# Threads serving synchronous views under Daphne, per process (arkloop/serving.py; 0 = Django's own way).
ARKLOOP_REQUEST_THREADS = env.int("ARKLOOP_REQUEST_THREADS", default=16)
ARKLOOP_SSE_HEARTBEAT_SECONDS = env.float("ARKLOOP_SSE_HEARTBEAT_SECONDS", default=15.0)
# Open event streams per API key or access token, per Daphne process (0 = no cap).
ARKLOOP_MAX_STREAMS_PER_PRINCIPAL = env.int("ARKLOOP_MAX_STREAMS_PER_PRINCIPAL", default=100)
ARKLOOP_INPUT_TIMEOUT_SECONDS = env.int("ARKLOOP_INPUT_TIMEOUT_SECONDS", default=3600)
ARKLOOP_CREDITS_PER_USD = env.int("ARKLOOP_CREDITS_PER_USD", default=1000)
ARKLOOP_DEFAULT_PERSONA = env.str("ARKLOOP_DEFAULT_PERSONA", default="default")
ARKLOOP_DEFAULT_ROUTE = env.str("ARKLOOP_DEFAULT_ROUTE", default="stub")
# How long a process remembers the personas and routes runs resolve (personas.selectors; 0 = always ask).
ARKLOOP_PERSONA_CACHE_SECONDS = env.float("ARKLOOP_PERSONA_CACHE_SECONDS", default=5.0)
ARKLOOP_LISTEN_DATABASE_URL = env.str("ARKLOOP_LISTEN_DATABASE_URL", default="")
ARKLOOP_LEASE_SECONDS = env.float("ARKLOOP_LEASE_SECONDS", default=30.0)
# Provider calls: attempts per route (408/429/5xx/network), backoff base doubling per retry.
ARKLOOP_LLM_MAX_ATTEMPTS = env.int("ARKLOOP_LLM_MAX_ATTEMPTS", default=3)
ARKLOOP_LLM_RETRY_BASE_MS = env.int("ARKLOOP_LLM_RETRY_BASE_MS", default=200)
# Platform limits of every run (runs.limits); personas and create bodies may only lower them.
ARKLOOP_MAX_TURNS = env.int("ARKLOOP_MAX_TURNS", default=32)
ARKLOOP_MAX_TOOL_CALLS = env.int("ARKLOOP_MAX_TOOL_CALLS", default=128)
ARKLOOP_RUN_TIMEOUT_SECONDS = env.int("ARKLOOP_RUN_TIMEOUT_SECONDS", default=900)
# Runs of one org a runner executes at once; 0 = half of its --concurrency (at least 1).
ARKLOOP_RUNNER_SLOTS_PER_ORG = env.int("ARKLOOP_RUNNER_SLOTS_PER_ORG", default=0)
ARKLOOP_ROUTES_FILE = env.str("ARKLOOP_ROUTES_FILE", default="")
# Key for encrypting provider credentials at rest (Fernet). Derived from SECRET_KEY when unset.
ARKLOOP_ENCRYPTION_KEY = env.str("ARKLOOP_ENCRYPTION_KEY", default="")
# Outbound URLs (webhooks, MCP servers) may point at loopback/private addresses (arkloop.outbound).
ARKLOOP_ALLOW_PRIVATE_URLS = env.bool("ARKLOOP_ALLOW_PRIVATE_URLS", default=False)
# A webhook delivery is retried until this many hours after its event, then marked failed.
ARKLOOP_WEBHOOK_RETRY_HOURS = env.float("ARKLOOP_WEBHOOK_RETRY_HOURS", default=24.0)

# Webhooks (not deleted) and MCP servers an org may have (0 = no cap): every terminal event writes
# one delivery per webhook in the runner's transaction, and runners list every MCP server's tools.
ARKLOOP_MAX_WEBHOOKS_PER_ORG = env.int("ARKLOOP_MAX_WEBHOOKS_PER_ORG", default=100)
ARKLOOP_MAX_MCP_SERVERS_PER_ORG = env.int("ARKLOOP_MAX_MCP_SERVERS_PER_ORG", default=50)

# `GET /metrics` requires `Authorization: Bearer <this>` when set (Daphne and runagents --metrics-port).
ARKLOOP_METRICS_TOKEN = env.str("ARKLOOP_METRICS_TOKEN", default="")

# Django refuses bodies above this when they are read; the middleware answers 413 earlier still.
DATA_UPLOAD_MAX_MEMORY_SIZE = ARKLOOP_MAX_BODY_BYTES

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["arkloop.authentication.BearerAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["arkloop.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "arkloop.api.JsonWhateverTheAccept",
    "URL_FORMAT_OVERRIDE": None,  # no `?format=`: a value no renderer has was a 404 on every endpoint
    "EXCEPTION_HANDLER": "arkloop.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "DATETIME_FORMAT": "%Y-%m-%dT%H:%M:%S.%fZ",
    "COERCE_DECIMAL_TO_STRING": False,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Arkloop Runs API",
    "DESCRIPTION": "Threads, runs of agent loops, and their live event streams.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "arkloop.schema.add_error_responses",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Load balancers probe /healthz and /readyz every few seconds: a not-ready answer is not news each time.
    "filters": {"quiet_probes": {"()": "arkloop.operations.QuietProbes"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # httpx2 (the MCP SDK's HTTP client) logs every request, URL included, at INFO.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "django.request": {"filters": ["quiet_probes"]},
                "httpx2": {"level": "WARNING"}},
}
