"""Settings for every environment. Every value comes from the environment with a safe default.

Development defaults need nothing installed: SQLite under var/ and the django-q2 ORM broker.
`cdp_site.settings_production` tightens these and refuses to start without real keys.
"""

import os
from pathlib import Path

import dj_database_url

from cdp_site.keys import load_or_create_dev_keys

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CDP_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


IS_PRODUCTION = False
_DEV_KEYS = None if os.environ.get("CDP_PRODUCTION") == "1" else load_or_create_dev_keys(VAR_DIR)


def _dev_key(name):
    return _DEV_KEYS[name] if _DEV_KEYS else None


SECRET_KEY = os.environ.get("SECRET_KEY") or _dev_key("secret_key")
DEBUG = env_bool("DEBUG", True)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# PII at rest: Fernet keys, comma separated. The first encrypts, all decrypt (rotation).
PII_ENCRYPTION_KEYS = env_list("PII_ENCRYPTION_KEYS", _dev_key("pii_encryption_keys") or [])
# Keyed blind index (HMAC) for lookups and uniqueness of encrypted identifier values.
PII_BLIND_INDEX_KEY = os.environ.get("PII_BLIND_INDEX_KEY") or _dev_key("pii_blind_index_key")
TOMBSTONE_KEY = os.environ.get("TOMBSTONE_KEY") or _dev_key("tombstone_key")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "django_htmx",
    "django_q",
    "drf_spectacular",
    "cdp_site",
    "identity",
    "profiles",
    "consent",
    "segments",
    "activations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "cdp_site.urls"
WSGI_APPLICATION = "cdp_site.wsgi.application"

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
                "cdp_site.context_processors.navigation",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'cdp.sqlite3'}",
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
# Behind PgBouncer in transaction pooling, server-side cursors (QuerySet.iterator()) break: set
# DB_DISABLE_SERVER_SIDE_CURSORS=1 there (iterators then read their rows in one go).
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = os.environ.get("DB_DISABLE_SERVER_SIDE_CURSORS") == "1"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while the worker writes; the busy timeout queues writers.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_ROOT = VAR_DIR / "media"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Log-in rate limiting and lockout (cdp_site/login_security.py), counted in the cache: after this
# many failures within the window, a username or a client address is refused for the lockout time.
AUTHENTICATION_BACKENDS = ["cdp_site.login_security.LockoutModelBackend"]
LOGIN_FAILURE_WINDOW_SECONDS = int(os.environ.get("LOGIN_FAILURE_WINDOW_SECONDS", "900"))
LOGIN_MAX_FAILURES_PER_USERNAME = int(os.environ.get("LOGIN_MAX_FAILURES_PER_USERNAME", "5"))
LOGIN_MAX_FAILURES_PER_IP = int(os.environ.get("LOGIN_MAX_FAILURES_PER_IP", "20"))
LOGIN_LOCKOUT_SECONDS = int(os.environ.get("LOGIN_LOCKOUT_SECONDS", "900"))
# Proxies in front of the web server that append to X-Forwarded-For (0: use REMOTE_ADDR).
LOGIN_TRUSTED_PROXY_COUNT = int(os.environ.get("LOGIN_TRUSTED_PROXY_COUNT", "0"))
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

REDIS_URL = os.environ.get("REDIS_URL", "")

if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# django-q2. `retry` must exceed `timeout`, and `max_attempts` must be set (its default retries
# forever). Our own tables hold pending work; a lost task only delays it (see the sweeper).
Q_CLUSTER = {
    "name": "cdp",
    "workers": int(os.environ.get("Q_WORKERS", "1")),
    "timeout": 300,
    "retry": 360,
    "max_attempts": 3,
    "queue_limit": 50,
    "bulk": 10,
    "catch_up": False,
    "save_limit": 1000,
    "ack_failures": True,
    "label": "Tasks",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "cdp_site.authentication.HashedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["cdp_site.permissions.RoleModelPermissions"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "CDP back-office API",
    "DESCRIPTION": "Profiles, sources and raw events of the customer data platform.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "ENUM_NAME_OVERRIDES": {
        "ProfileStatusEnum": "profiles.models.Profile.STATUSES",
        "RawEventStatusEnum": "profiles.models.RawEvent.STATUSES",
    },
}

# Ingestion limits (Segment's own limits: 32 KB per message, 500 KB per batch).
TRACKING_MAX_MESSAGE_BYTES = 32 * 1024
TRACKING_MAX_BATCH_BYTES = 500 * 1024
WEBHOOK_MAX_BODY_BYTES = int(os.environ.get("WEBHOOK_MAX_BODY_BYTES", str(1024 * 1024)))
WEBHOOK_TIMESTAMP_TOLERANCE_SECONDS = 300
# Default region for phone numbers written without a country code.
PHONE_DEFAULT_REGION = os.environ.get("PHONE_DEFAULT_REGION", "US")
# Raw events pending for longer than this are claimed by the sweeper.
SWEEPER_PENDING_AFTER_SECONDS = int(os.environ.get("SWEEPER_PENDING_AFTER_SECONDS", "60"))
PROCESSING_BATCH_SIZE = int(os.environ.get("PROCESSING_BATCH_SIZE", "1000"))
# The request path nudges a worker at most this often per process; a processing task lingers
# longer than that before it stops, so no stored row waits for the sweeper in normal operation.
PROCESSING_NUDGE_INTERVAL = float(os.environ.get("PROCESSING_NUDGE_INTERVAL", "0.5"))
PROCESSING_LINGER_SECONDS = float(os.environ.get("PROCESSING_LINGER_SECONDS", "2"))
PROCESSING_TASK_MAX_SECONDS = 120  # well under Q_CLUSTER["timeout"]
# Monthly partitions of the events table (PostgreSQL, profiles/partitions.py): months kept ready
# ahead, and the rows a month must gather in the default partition to get a partition of its own.
EVENT_PARTITION_MONTHS_AHEAD = int(os.environ.get("EVENT_PARTITION_MONTHS_AHEAD", "3"))
EVENT_PARTITION_SPLIT_MIN_ROWS = int(os.environ.get("EVENT_PARTITION_SPLIT_MIN_ROWS", "10000"))
# Event triggers fire only for events that happened this recently (backfills and late retries of
# old events send nothing).
TRIGGER_MAX_EVENT_AGE_HOURS = float(os.environ.get("TRIGGER_MAX_EVENT_AGE_HOURS", "24"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

# Probabilistic identity matching (identity/matching). A pair at or above the auto threshold is
# linked and merged; between review and auto it is queued for review; below, nothing happens.
IDENTITY_MATCH_AUTO_THRESHOLD = float(os.environ.get("IDENTITY_MATCH_AUTO_THRESHOLD", "0.995"))
IDENTITY_MATCH_REVIEW_THRESHOLD = float(os.environ.get("IDENTITY_MATCH_REVIEW_THRESHOLD", "0.8"))
# Blocking keys held by more profiles than this are skipped (counted in MatchRun.parameters).
IDENTITY_MATCH_BLOCK_CAP = int(os.environ.get("IDENTITY_MATCH_BLOCK_CAP", "50"))
IDENTITY_MATCH_EM_ITERATIONS = int(os.environ.get("IDENTITY_MATCH_EM_ITERATIONS", "200"))
# u of random pairs: drawn among this many randomly chosen profiles.
IDENTITY_MATCH_RANDOM_PROFILES = int(os.environ.get("IDENTITY_MATCH_RANDOM_PROFILES", "2000"))
IDENTITY_MATCH_RANDOM_PAIRS = int(os.environ.get("IDENTITY_MATCH_RANDOM_PAIRS", "50000"))
# A run (incremental or full) with fewer candidate pairs reuses the last fitted model instead of refitting.
IDENTITY_MATCH_MIN_FIT_PAIRS = int(os.environ.get("IDENTITY_MATCH_MIN_FIT_PAIRS", "500"))
IDENTITY_MATCH_SAMPLE_SIZE = int(os.environ.get("IDENTITY_MATCH_SAMPLE_SIZE", "200"))
