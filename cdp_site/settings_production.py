"""Production settings: DEBUG off, HTTPS only, and no start without real keys."""

import os

from django.core.exceptions import ImproperlyConfigured

os.environ["CDP_PRODUCTION"] = "1"

from cdp_site.settings import *  # noqa: E402,F403
from cdp_site.settings import REDIS_URL, env_bool, env_list  # noqa: E402

IS_PRODUCTION = True
DEBUG = env_bool("DEBUG", False)

_missing = [
    name
    for name in ("SECRET_KEY", "PII_ENCRYPTION_KEYS", "PII_BLIND_INDEX_KEY", "TOMBSTONE_KEY")
    if not os.environ.get(name)
]
if _missing:
    raise ImproperlyConfigured("Production settings need these environment variables: " + ", ".join(_missing))
if len(os.environ["SECRET_KEY"]) < 50:
    raise ImproperlyConfigured("SECRET_KEY must be at least 50 characters long.")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [])
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
# No script reads the CSRF cookie: pages put the token in forms and in htmx's hx-headers.
CSRF_COOKIE_HTTPONLY = True
# A back-office session lasts a working day by default.
SESSION_COOKIE_AGE = int(os.environ.get("SESSION_COOKIE_AGE", str(12 * 3600)))
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Log-in lockout counts and tracking rate limits live in the cache, so every process on every machine
# must share it: Redis when REDIS_URL is set, else a table in the database (migration cdp_site 0009
# creates it; no createcachetable step). A per-process cache would let each worker count on its own.
if REDIS_URL:
    # Short socket timeouts: lockout and rate limits fail open when Redis is unreachable
    # (login_security, tracking views), and an unanswered connection must not hold every request.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "cdp_cache",
            # incr() on this backend rewrites the key with this default timeout: keep it short, so the
            # per-second tracking counters are expired, and cheap to delete, well before a cull.
            "TIMEOUT": 60,
            # Rows counted before a cull, which deletes expired rows first (every write counts the
            # table). Live rows: about 60 per tracking source receiving events, a few per failing log-in.
            "OPTIONS": {"MAX_ENTRIES": 5000},
        }
    }
