"""The cache behind log-in lockout and tracking rate limits, with several processes and machines.

Production shares one cache between every process: Redis when REDIS_URL is set, else the database
cache (table `cdp_cache`, made by a migration). When that cache is unreachable, log-in and tracking
keep working without their limits (fail open) and say so in the log, once a minute.
"""

import base64
import importlib
import io
import json
import logging
import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache.backends.db import DatabaseCache
from django.core.management import call_command
from django.db import connection, connections, models
from django.test import Client, override_settings

from cdp_site import login_security
from cdp_site.models import AuditEntry
from profiles.models import RawEvent
from profiles.sources import source_create
from profiles.tracking import views as tracking_views

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pw-123-secret"
WRONG = "Wr0ng-horse-battery"
LOCKED = "Too many failed log-in attempts"
# Nothing listens on port 1: every cache call fails with redis.exceptions.ConnectionError.
REDIS_DOWN = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
}
# The production cache without REDIS_URL (cdp_site/settings_production.py; checked below).
PRODUCTION_DATABASE_CACHE = {"TIMEOUT": 60, "OPTIONS": {"MAX_ENTRIES": 5000}}
cache_migration = importlib.import_module("cdp_site.migrations.0009_cache_table")


@pytest.fixture
def staff(make_user, unique_name):
    return make_user(username=unique_name("staff"))


@pytest.fixture
def warnings_reset(monkeypatch, caplog):
    """Each module warns once a minute per process: start this test as if none was given yet."""
    login_security._warn_cache_unavailable.reset()
    tracking_views._warn_rate_limit_unavailable.reset()
    caplog.set_level(logging.WARNING)
    return caplog


def log_in(username, password, address):
    return Client().post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def logged_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == "/"


def warnings_of(caplog, event: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.getMessage().startswith(event)]


# -- production settings ----------------------------------------------------------------------------


def production_cache(tmp_path, **env) -> dict:
    """settings.CACHES["default"] as the production settings build it, in a fresh interpreter."""
    from cryptography.fernet import Fernet

    base = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "PII_ENCRYPTION_KEYS", "REDIS_URL"}}
    base.update(
        DJANGO_SETTINGS_MODULE="cdp_site.settings_production",
        CDP_VAR_DIR=str(tmp_path),
        SECRET_KEY="x" * 20 + "-production-secret-key-with-enough-entropy-1234567890",
        PII_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        PII_BLIND_INDEX_KEY="blind-index-key-0123456789",
        TOMBSTONE_KEY="tombstone-key-0123456789",
        ALLOWED_HOSTS="cdp.example.com",
        **env,
    )
    script = "import json; from django.conf import settings; print(json.dumps(settings.CACHES['default']))"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_uses_the_database_cache_without_redis_and_redis_with_it(tmp_path):
    assert production_cache(tmp_path) == {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "cdp_cache",
        **PRODUCTION_DATABASE_CACHE,
    }
    with_redis = production_cache(tmp_path, REDIS_URL="redis://cache.internal:6379/0")
    assert with_redis["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert with_redis["LOCATION"] == "redis://cache.internal:6379/0"
    assert with_redis["OPTIONS"] == {"socket_connect_timeout": 1, "socket_timeout": 1}


def test_development_and_test_settings_keep_their_cache():
    assert settings.CACHES["default"]["BACKEND"] in {
        "django.core.cache.backends.locmem.LocMemCache",
        "django.core.cache.backends.redis.RedisCache",  # when the test run sets REDIS_URL
    }


# -- the cache table --------------------------------------------------------------------------------


def test_the_migration_creates_the_cache_table_exactly_as_createcachetable_would():
    probe = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "cdp_cache_probe"}}
    output = io.StringIO()
    with override_settings(CACHES=probe):
        call_command("createcachetable", dry_run=True, stdout=output)
    assert output.getvalue().strip() == "\n".join(cache_migration.cache_table_statements(connection, "cdp_cache_probe"))

    # ...and the test database, built by the migrations, has it: no createcachetable step.
    with connection.cursor() as cursor:
        description = connection.introspection.get_table_description(cursor, "cdp_cache")
        columns = {column.name: column for column in description}
        constraints = connection.introspection.get_constraints(cursor, "cdp_cache")
    assert list(columns) == ["cache_key", "value", "expires"]
    assert not any(column.null_ok for column in columns.values())
    assert [c["columns"] for c in constraints.values() if c["primary_key"]] == [["cache_key"]]
    assert [c["columns"] for c in constraints.values() if c["index"] and not c["primary_key"]] == [["expires"]]


def test_the_migration_leaves_an_existing_cache_table_alone():
    class RecordingSchemaEditor:
        def __init__(self):
            self.connection, self.statements = connection, []

        def execute(self, statement):
            self.statements.append(statement)

    cache = DatabaseCache("cdp_cache", {})
    cache.set("kept", 1, timeout=60)
    editor = RecordingSchemaEditor()
    cache_migration.create_cache_table(None, editor)
    assert editor.statements == [] and cache.get("kept") == 1


# -- lockout shared by processes --------------------------------------------------------------------


def test_lockout_counts_are_shared_by_every_process_through_the_database_cache(staff, address, monkeypatch):
    def on_another_process():
        # A cache object of its own, as a worker on another machine has: all it shares is the database.
        monkeypatch.setattr(login_security, "cache", DatabaseCache("cdp_cache", PRODUCTION_DATABASE_CACHE))

    for _ in range(settings.LOGIN_MAX_FAILURES_PER_USERNAME - 1):
        on_another_process()
        assert LOCKED not in log_in(staff.username, WRONG, address()).content.decode()
    on_another_process()
    assert LOCKED in log_in(staff.username, WRONG, address()).content.decode()

    on_another_process()
    response = log_in(staff.username, PASSWORD, address())
    assert not logged_in(response) and LOCKED in response.content.decode()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="simultaneous writers need PostgreSQL")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_simultaneous_failures_on_several_processes_are_each_counted(monkeypatch, unique_name):
    # Eight workers fail at the same instant, each on a connection of its own. A get-then-set count,
    # which is what the database cache's incr() is, counted such a burst as one or two failures.
    monkeypatch.setattr(login_security, "cache", DatabaseCache("cdp_cache", PRODUCTION_DATABASE_CACHE))
    key, start, counts = unique_name("address"), threading.Barrier(8), []

    def worker():
        start.wait()
        try:
            counts.append(login_security._failure_count("address", key, 20))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(counts) == list(range(1, 9))


def time_passes(seconds: int, clock: list[float], monkeypatch) -> None:
    """Move the database cache and the lockout's clock `seconds` ahead: every expiry comes nearer."""
    clock[0] += seconds
    monkeypatch.setattr(login_security, "_now", lambda: clock[0])
    expression = models.Expression(output_field=models.DateTimeField())
    converters = connection.ops.get_db_converters(expression) + expression.get_db_converters(connection)
    with connection.cursor() as cursor:
        cursor.execute("SELECT cache_key, expires FROM cdp_cache")
        for key, expires in cursor.fetchall():
            for converter in converters:
                expires = converter(expires, expression, connection)
            earlier = connection.ops.adapt_datetimefield_value(expires - timedelta(seconds=seconds))
            cursor.execute("UPDATE cdp_cache SET expires = %s WHERE cache_key = %s", [earlier, key])


def test_failures_minutes_apart_stay_counted_for_the_whole_window_on_the_database_cache(staff, address, monkeypatch):
    # The database cache's incr() re-sets a key with the cache's default timeout (60 s in production):
    # a count kept that way would forget each failure a minute later, long before the 15-minute window.
    monkeypatch.setattr(login_security, "cache", DatabaseCache("cdp_cache", PRODUCTION_DATABASE_CACHE))
    clock = [login_security._now()]
    monkeypatch.setattr(login_security, "_now", lambda: clock[0])
    assert settings.LOGIN_FAILURE_WINDOW_SECONDS == 900

    for _ in range(settings.LOGIN_MAX_FAILURES_PER_USERNAME - 1):
        assert LOCKED not in log_in(staff.username, WRONG, address()).content.decode()
        time_passes(100, clock, monkeypatch)
    assert LOCKED in log_in(staff.username, WRONG, address()).content.decode()  # 400 s after the first

    time_passes(settings.LOGIN_LOCKOUT_SECONDS + 1, clock, monkeypatch)
    assert logged_in(log_in(staff.username, PASSWORD, address()))


# -- the cache is down ------------------------------------------------------------------------------


def test_log_in_works_unlimited_but_audited_when_the_cache_is_down(staff, address, warnings_reset):
    with override_settings(CACHES=REDIS_DOWN):
        for _ in range(settings.LOGIN_MAX_FAILURES_PER_USERNAME + 1):
            response = log_in(staff.username, WRONG, address())
            assert response.status_code == 200
            page = response.content.decode()
            assert "Please enter a correct username and password" in page and LOCKED not in page
        assert logged_in(log_in(staff.username, PASSWORD, address()))

    failures = settings.LOGIN_MAX_FAILURES_PER_USERNAME + 1
    assert AuditEntry.objects.filter(action="auth.login_failed").count() == failures
    assert AuditEntry.objects.filter(action="auth.login").count() == 1
    # One warning for seven log-ins, naming nobody (login_failed lines name existing accounts, as ever).
    assert warnings_of(warnings_reset, "login_lockout_unavailable") == [
        "login_lockout_unavailable error=ConnectionError: log-ins are not rate limited"
    ]


def test_tracking_accepts_and_stores_without_a_rate_limit_when_the_cache_is_down(client, warnings_reset):
    _, credentials = source_create(name="Web SDK", kind="tracking", rate_limit_per_second=1)
    auth = "Basic " + base64.b64encode(f"{credentials.write_key}:".encode()).decode()
    with override_settings(CACHES=REDIS_DOWN):
        for message_id in ("down-1", "down-2", "down-3"):
            body = json.dumps({"type": "track", "event": "Class Booked", "userId": "u1", "messageId": message_id})
            response = client.post("/v1/track", data=body, content_type="application/json", HTTP_AUTHORIZATION=auth)
            assert response.status_code == 200 and response.json() == {"success": True}

    # Three messages in a second against a limit of one: all stored, the limit was not applied.
    assert set(RawEvent.objects.values_list("external_id", flat=True)) == {"down-1", "down-2", "down-3"}
    assert warnings_of(warnings_reset, "tracking_rate_limit_unavailable") == [
        "tracking_rate_limit_unavailable error=ConnectionError: accepting without a rate limit"
    ]
