"""One settings module for every environment; the environment picks the parts.

Zero configuration gives the embedded default: SQLite, in-process memory (event logs,
stops, limits, cache) and the offline demo model. `DATABASE_URL` and `REDIS_URL` switch to
PostgreSQL and Redis.
See `.env.example` for every variable.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from chatproject.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_json,
    env_networks,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("CHAT_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# Unconfigured means production: DEBUG off, a real SECRET_KEY required, no dev login.
# Development opts in explicitly (`make run` and `make test` set DEBUG=1).
DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set (DEBUG is off, as in production); "
            "for development set DEBUG=1, as `make run` does"
        )
    # Long enough to start with DEBUG off (the live test servers do), and prefixed so that
    # `check --deploy` still calls it what it is.
    SECRET_KEY = "django-insecure-development-key-never-use-it-in-production-4f9a1c"
elif not DEBUG and (len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5):
    raise ImproperlyConfigured(
        "SECRET_KEY is too weak: use at least 50 random characters, e.g. "
        "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`"
    )

ALLOWED_HOSTS = [h.strip() for h in env_str("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")]
CSRF_TRUSTED_ORIGINS = [o for o in env_str("CSRF_TRUSTED_ORIGINS").split(",") if o]
# Behind nginx the original scheme arrives in X-Forwarded-Proto, and the client's address
# as the last entry of X-Forwarded-For (chatproject/client_ip.py).
BEHIND_PROXY = env_bool("BEHIND_PROXY", False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = True

# HTTPS only, unless DEBUG (development serves plain http on localhost). What
# `manage.py check --deploy` asks for; each can be turned off (docs/deploy.md).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Health checks and Prometheus reach each process directly, over plain http.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)

INSTALLED_APPS = [
    # First: its `runserver` (daphne's, refusing a taken port) wins over daphne's own.
    "chatproject",
    "daphne",  # before Django's apps, so `runserver` serves ASGI
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our static files, not a CDN
    "channels",
    "accounts",
    "chat",
]

MIDDLEWARE = [
    # Middleware that must also run on the answer streams go above the lane; it stands in
    # for the rest on streams (chatproject/middleware.py; check chat.W002 names the others).
    "chatproject.middleware.StreamLaneMiddleware",
    "chatproject.middleware.ApiJsonErrorsMiddleware",  # outermost: /api/ is never HTML
    "chatproject.middleware.api_messages_in_english",
    "django.middleware.security.SecurityMiddleware",
    "chatproject.middleware.GZipExceptEventStreamMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "chatproject.middleware.ContentSecurityPolicyMiddleware",
    "chatproject.middleware.ApiErrorMiddleware",
    "chatproject.middleware.ApiRequestBodyMiddleware",
]

# Every HTML page that sets none of its own (chatproject/middleware.py): scripts from our
# own static files only, never inline; Swagger UI's own inline styles and data: icons.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)

# Paths are served exactly as documented; the other slash form gets a JSON 404 with a hint
# (a redirect cannot carry a POST body, and Django's DEBUG check would answer it with a 500).
APPEND_SLASH = False
# The largest body an endpoint takes (the bulk save's); every endpoint checks its own,
# lower limit first (chatproject/request_body.py), with a JSON 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024
ROOT_URLCONF = "chatproject.urls"
ASGI_APPLICATION = "chatproject.asgi.application"
WSGI_APPLICATION = None

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


def _database_from_env() -> dict:
    url = env_str("DATABASE_URL")
    if url:
        database = dj_database_url.parse(url)
        if database["ENGINE"].endswith("postgresql"):
            # Under ASGI every request runs in its own thread: connections come from a
            # bounded pool and go back to it (CONN_MAX_AGE must be 0 with a pool).
            database["CONN_MAX_AGE"] = 0
            database.setdefault("OPTIONS", {})["pool"] = {
                "min_size": 2,
                "max_size": env_int("DB_POOL_SIZE", 20, minimum=2),
                "timeout": 10,
            }
        return database
    # SQLite tuned for many concurrent streams: WAL lets readers run beside the writer,
    # IMMEDIATE transactions take the write lock up front (no lock-upgrade deadlocks), and
    # the busy timeout makes a writer wait its turn instead of failing "database is locked".
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": env_str("SQLITE_PATH", str(VAR_DIR / "db.sqlite3")),
        "CONN_MAX_AGE": 600,
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        },
        # A file, not :memory:, so the live server the tests start shares it.
        "TEST": {"NAME": str(VAR_DIR / "test.sqlite3")},
    }


DATABASES = {"default": _database_from_env()}
_SQLITE = DATABASES["default"]["ENGINE"].endswith("sqlite3")
# Threads that run the stream path's database work (see chatproject/db.py). SQLite has one
# writer at a time anyway, so one thread there avoids lock contention entirely.
CHAT_DB_THREADS = env_int("CHAT_DB_THREADS", 1 if _SQLITE else 4, minimum=1)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = env_str("LANGUAGE_CODE", "zh-hans")
TIME_ZONE = env_str("TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
# The admin's Chinese for the project's own words, and for the few of Django's own that
# its catalogs lack: `make messages` after a change (docs/moderation.md, "Languages").
LOCALE_PATHS = [BASE_DIR / "locale", BASE_DIR / "locale" / "django"]
USE_TZ = True

STATIC_URL = "static/"
# The project's own static files, once it has some (every command warned about a missing one).
STATICFILES_DIRS = [path for path in [BASE_DIR / "static"] if path.is_dir()]
STATIC_ROOT = BASE_DIR / "staticfiles"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["chatproject.drf.JsonParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "chatproject.drf.JsonOnlyNegotiation",
    "EXCEPTION_HANDLER": "chatproject.drf.drf_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "chat.openapi.ApiAutoSchema",
}

# OpenAPI 3 at /api/schema/ (YAML; ?format=json for JSON), Swagger UI at /api/docs/.
SPECTACULAR_SETTINGS = {
    "TITLE": "WeChat AI Chat API",
    "DESCRIPTION": "Streaming AI chat for WeChat Mini-Programs. Errors are always "
    '`{"error": {"code", "message"}}`. Guides: docs/protocol.md (stream), docs/api.md.',
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],  # public, even with a stale token in the header
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # A token kept in the browser's storage across visits: a convenience for development only.
    "SWAGGER_UI_SETTINGS": {"persistAuthorization": DEBUG},
    "PATH_CONVERTER_OVERRIDES": {
        "db_id": {"type": "integer", "minimum": 1, "maximum": 999_999_999_999_999_999}
    },
    "ENUM_NAME_OVERRIDES": {
        "RecordStatusEnum": "chat.models.ChatRecord.Status",
        "RatingEnum": "chat.models.ChatRecord.Rating",
        "TerminalEnum": "chat.models.ChatRecord.Terminal",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "chat.openapi_streams.schema_stream_add",
    ],
}

# One JSON object a line in production, plain lines under DEBUG (chatproject/logs.py), both
# with the user and record ids where known and with secrets redacted. Questions and answers
# are never logged, unless CHAT_LOG_CONTENT=1 (then on the one line per finished answer).
LOG_FORMAT = env_choice("LOG_FORMAT", "plain" if DEBUG else "json", ("json", "plain"))
CHAT_LOG_CONTENT = env_bool("CHAT_LOG_CONTENT", False)
_QUIET = {"level": "WARNING"}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "chatproject.logs.LogContextFilter"}},
    "formatters": {
        "plain": {"()": "chatproject.logs.PlainFormatter"},
        "json": {"()": "chatproject.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        },
        # Database and Redis failures are counted from the lines that report them.
        "metrics": {"class": "chatproject.metrics.FailureCountingHandler", "level": "WARNING"},
    },
    "root": {"handlers": ["console", "metrics"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Django's default config gives `django` a console handler of its own under DEBUG,
        # which printed every line twice (once plain, once through the root's handler).
        "django": {"level": "INFO"},
        # Below WARNING these carry SQL parameters and request bodies (questions, answers),
        # whatever LOG_LEVEL says.
        "django.db.backends": _QUIET,
        "openai": _QUIET,
        "httpcore": _QUIET,
        # httpx logs every request URL at INFO, and code2Session's URL carries the app secret.
        "httpx": _QUIET,
        # The openai SDK's transport logs every upstream request at INFO: a line per answer.
        "httpx2": _QUIET,
        # uvicorn's server lines go through the same handlers and format (its default config
        # gives them a handler of its own). Its access log is left as uvicorn sets it: off
        # in production (`--no-access-log`; nginx logs requests). Configuring `uvicorn`
        # itself would reset that child logger and turn the access log back on.
        "uvicorn.error": {"handlers": ["console", "metrics"], "propagate": False},
    },
}

# --- Accounts -----------------------------------------------------------------------------
# The development login (an openid in, a token out) for the offline demo and the tests:
# anyone may log in as anyone, so it is on only when asked for, never implied by DEBUG.
CHAT_DEV_LOGIN = env_bool("CHAT_DEV_LOGIN", False)
CHAT_TOKEN_TTL_SECONDS = env_int("CHAT_TOKEN_TTL_SECONDS", 7 * 24 * 3600, minimum=60)
# Live tokens per user (each login and each web-view page opened makes one); a new one
# past the cap revokes the oldest.
CHAT_TOKENS_PER_USER_MAX = env_int("CHAT_TOKENS_PER_USER_MAX", 20, minimum=1)
# WeChat login (code2Session). Without app id and secret it answers 503 wechat_not_configured;
# the base URL is configurable so tests and demos can point it at a local server.
WECHAT_APP_ID = env_str("WECHAT_APP_ID")
WECHAT_APP_SECRET = env_str("WECHAT_APP_SECRET")
WECHAT_API_BASE = env_str("WECHAT_API_BASE", "https://api.weixin.qq.com").rstrip("/")
WECHAT_TIMEOUT_SECONDS = env_float("WECHAT_TIMEOUT_SECONDS", 5.0, minimum=0.1)
# How long a web-view ticket may wait for its (single) exchange.
CHAT_WEBVIEW_TICKET_TTL_SECONDS = env_int("CHAT_WEBVIEW_TICKET_TTL_SECONDS", 60, minimum=5)

# --- Chat ---------------------------------------------------------------------------------
# Models: LLM_BASE_URL/LLM_API_KEY/LLM_MODEL define one; LLM_MODELS (JSON) may define several.
# With no key and no LLM_MODELS, the offline demo model answers (no network needed).
LLM_BASE_URL = env_str("LLM_BASE_URL", "https://api.openai.com/v1")
LLM_API_KEY = env_str("LLM_API_KEY")
LLM_MODEL = env_str("LLM_MODEL", "gpt-4o-mini")
LLM_MODELS = env_json("LLM_MODELS")
LLM_DEFAULT_MODEL = env_str("LLM_DEFAULT_MODEL")
LLM_OFFLINE = env_bool("LLM_OFFLINE", False)
LLM_TIMEOUT_SECONDS = env_float("LLM_TIMEOUT_SECONDS", 60.0, minimum=0.1)
LLM_MAX_TOKENS = env_int("LLM_MAX_TOKENS", 2048, minimum=1)
# The SDK's HTTP transport: "aiohttp" (leaner per token) or "httpx" (the SDK's default).
LLM_HTTP_CLIENT = env_str("LLM_HTTP_CLIENT", "aiohttp")
if LLM_HTTP_CLIENT not in ("aiohttp", "httpx"):
    raise ImproperlyConfigured("LLM_HTTP_CLIENT must be aiohttp or httpx")

CHAT_SYSTEM_PROMPT = env_str(
    "CHAT_SYSTEM_PROMPT",
    "You are a helpful, concise assistant inside a WeChat Mini-Program. "
    "Answer in the language of the question; use Markdown when it helps.",
)
CHAT_CONTEXT_TURNS = env_int("CHAT_CONTEXT_TURNS", 6)
CHAT_QUESTION_MAX_CHARS = env_int("CHAT_QUESTION_MAX_CHARS", 4000, minimum=1)
CHAT_PING_SECONDS = env_float("CHAT_PING_SECONDS", 15.0, minimum=0.05)
# The model is read once per window (chat/streaming/pacing.py), so what it produced meanwhile
# travels as one event: 67 ms is at most 15 events/s, the pace a mini-program's setData
# renders smoothly (each event costs a wake-up and a write, bench/); 0 sends every delta
# at once.
CHAT_COALESCE_MS = env_int("CHAT_COALESCE_MS", 67)
CHAT_OFFLINE_TOKENS_PER_SECOND = env_float("CHAT_OFFLINE_TOKENS_PER_SECOND", 30.0, minimum=0.1)

# --- Resume, stop, several processes ------------------------------------------------------
# A client that drops is detached, not cancelled: the answer goes on for this long with no
# client attached before the upstream call is cancelled and the partial answer saved.
CHAT_DETACH_GRACE_SECONDS = env_float("CHAT_DETACH_GRACE_SECONDS", 30.0)
# How long a finished answer's events stay available for resume (then: the history API).
CHAT_REPLAY_TTL_SECONDS = env_int("CHAT_REPLAY_TTL_SECONDS", 300, minimum=1)
# Every this often a generating process saves the partial answer and its heartbeat.
CHAT_CHECKPOINT_SECONDS = env_float("CHAT_CHECKPOINT_SECONDS", 5.0, minimum=0.05)
# An open record whose heartbeat is older than this belongs to a dead process.
CHAT_REAP_AFTER_SECONDS = env_float("CHAT_REAP_AFTER_SECONDS", 30.0, minimum=0.1)
# On SIGTERM: refuse new streams, give running ones this long, then save them interrupted.
CHAT_DRAIN_SECONDS = env_float("CHAT_DRAIN_SECONDS", 20.0)
# Namespace of this deployment's keys in Redis.
CHAT_REDIS_PREFIX = env_str("CHAT_REDIS_PREFIX", "chat")

# --- Limits (chat/limits.py) ----------------------------------------------------------------
# Per user; 0 means no limit. Staff may set other values for one user in the admin.
# Counted in Redis when REDIS_URL is set (shared by every process), else in this process's
# cache. A refusal is `429 rate_limited` with Retry-After and the limit's name.
CHAT_LIMIT_CONCURRENT_STREAMS = env_int("CHAT_LIMIT_CONCURRENT_STREAMS", 2)
CHAT_LIMIT_QUESTIONS_PER_MINUTE = env_int("CHAT_LIMIT_QUESTIONS_PER_MINUTE", 10)
CHAT_LIMIT_QUESTIONS_PER_DAY = env_int("CHAT_LIMIT_QUESTIONS_PER_DAY", 300)
CHAT_LIMIT_ANSWER_TOKENS_PER_DAY = env_int("CHAT_LIMIT_ANSWER_TOKENS_PER_DAY", 300_000)
# Per client address (behind nginx: X-Forwarded-For, with BEHIND_PROXY=1).
CHAT_LIMIT_LOGINS_PER_IP_PER_MINUTE = env_int("CHAT_LIMIT_LOGINS_PER_IP_PER_MINUTE", 30)
CHAT_LIMIT_TICKET_EXCHANGES_PER_IP_PER_MINUTE = env_int(
    "CHAT_LIMIT_TICKET_EXCHANGES_PER_IP_PER_MINUTE", 60
)

# --- Content security (chat/content_check/) --------------------------------------------------
# Questions are checked before the model is asked and answers while they stream; off when
# empty. `keywords` (the word list below), `wechat` (WeChat's msgSecCheck v2, with
# WECHAT_APP_ID/SECRET) or the dotted path of a ContentChecker class of your own.
CHAT_CONTENT_CHECK = env_str("CHAT_CONTENT_CHECK").strip()
# The keyword moderator's words: comma- or newline-separated (CHAT_CONTENT_CHECK_KEYWORDS_FILE
# reads them from a file, one a line); matched case-insensitively, anywhere in the text.
CHAT_CONTENT_CHECK_KEYWORDS = env_str("CHAT_CONTENT_CHECK_KEYWORDS")
# When the checker cannot answer (HTTP error, errcode, timeout): `closed` ends the stream
# with `content_check_unavailable`, `open` delivers unchecked (logged and counted).
CHAT_CONTENT_CHECK_ON_ERROR = env_choice(
    "CHAT_CONTENT_CHECK_ON_ERROR", "closed", ("open", "closed")
)
# `review` verdicts (WeChat is unsure) are stored for staff; 1 blocks them like `risky`.
CHAT_CONTENT_CHECK_BLOCK_REVIEW = env_bool("CHAT_CONTENT_CHECK_BLOCK_REVIEW", False)
# msgSecCheck's scene: 1 profile, 2 comment, 3 forum, 4 social log.
CHAT_CONTENT_CHECK_SCENE = env_int("CHAT_CONTENT_CHECK_SCENE", 2, minimum=1)
if CHAT_CONTENT_CHECK_SCENE > 4:
    raise ImproperlyConfigured("CHAT_CONTENT_CHECK_SCENE must be 1, 2, 3 or 4")
# Characters per check call (msgSecCheck takes at most 2500); an answer is checked in
# windows this long that end at its newest text.
CHAT_CONTENT_CHECK_MAX_CHARS = env_int("CHAT_CONTENT_CHECK_MAX_CHARS", 2500, minimum=200)
# An answer's checks start at most this often (0: each as soon as the one before returns,
# about one per round trip to WeChat): fewer calls against WeChat's quota, later text.
CHAT_CONTENT_CHECK_EVERY_MS = env_int("CHAT_CONTENT_CHECK_EVERY_MS", 0)
CHAT_CONTENT_CHECK_TIMEOUT_SECONDS = env_float(
    "CHAT_CONTENT_CHECK_TIMEOUT_SECONDS", 3.0, minimum=0.1
)
# The access token (stable_token) is renewed this long before it expires.
WECHAT_TOKEN_REFRESH_MARGIN_SECONDS = env_int("WECHAT_TOKEN_REFRESH_MARGIN_SECONDS", 300)

# --- Metrics (chatproject/metrics.py) --------------------------------------------------------
# Who may read /metrics (others get a 404): networks, comma-separated.
CHAT_METRICS_ALLOWED_NETWORKS = env_networks("CHAT_METRICS_ALLOWED_NETWORKS", "127.0.0.0/8,::1")
# Several processes on one host share their metrics through files in this directory
# (prometheus-client's multiprocess mode). The library reads the variable itself, so it is
# checked here but has no `_FILE` form.
PROMETHEUS_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if PROMETHEUS_MULTIPROC_DIR and not Path(PROMETHEUS_MULTIPROC_DIR).is_dir():
    raise ImproperlyConfigured(
        f"PROMETHEUS_MULTIPROC_DIR {PROMETHEUS_MULTIPROC_DIR!r} is not a directory"
    )
