import json
import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def test_django_q_configuration_is_safe():
    config = settings.Q_CLUSTER
    # max_attempts defaults to 0 (retry forever); retry must exceed timeout or tasks run twice.
    assert config["max_attempts"] >= 1
    assert config["retry"] > config["timeout"]


def _run(args, env_overrides):
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "PII_ENCRYPTION_KEYS"}}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_production_settings_refuse_to_start_without_keys(tmp_path):
    result = _run(["check"], {"DJANGO_SETTINGS_MODULE": "cdp_site.settings_production", "CDP_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "Production settings need these environment variables" in result.stderr
    assert "SECRET_KEY" in result.stderr and "PII_ENCRYPTION_KEYS" in result.stderr


def _production_env(tmp_path) -> dict:
    from cryptography.fernet import Fernet

    return {
        "DJANGO_SETTINGS_MODULE": "cdp_site.settings_production",
        "CDP_VAR_DIR": str(tmp_path),
        "SECRET_KEY": "x" * 20 + "-production-secret-key-with-enough-entropy-1234567890",
        "PII_ENCRYPTION_KEYS": f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}",
        "PII_BLIND_INDEX_KEY": "blind-index-key-0123456789",
        "TOMBSTONE_KEY": "tombstone-key-0123456789",
        "ALLOWED_HOSTS": "cdp.example.com",
    }


def test_check_deploy_is_clean_under_production_settings(tmp_path):
    # How CI runs it: the production settings module, the environment production needs, warnings fail.
    result = _run(["check", "--deploy", "--fail-level", "WARNING"], _production_env(tmp_path))
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


SECURITY_SETTINGS = (
    "DEBUG",
    "SESSION_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY",
    "SESSION_COOKIE_SAMESITE",
    "CSRF_COOKIE_SECURE",
    "CSRF_COOKIE_HTTPONLY",
    "SECURE_SSL_REDIRECT",
    "SECURE_PROXY_SSL_HEADER",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_CONTENT_TYPE_NOSNIFF",
    "X_FRAME_OPTIONS",
    "ALLOWED_HOSTS",
    "AUTHENTICATION_BACKENDS",
)


def test_production_cookies_are_secure_and_https_is_enforced(tmp_path):
    script = (
        "import json; from django.conf import settings; "
        f"print(json.dumps({{name: getattr(settings, name) for name in {SECURITY_SETTINGS!r}}}))"
    )
    result = _run(["shell", "-c", script], _production_env(tmp_path))
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values == {
        "DEBUG": False,
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "CSRF_COOKIE_SECURE": True,
        "CSRF_COOKIE_HTTPONLY": True,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
        "X_FRAME_OPTIONS": "DENY",
        "ALLOWED_HOSTS": ["cdp.example.com"],
        "AUTHENTICATION_BACKENDS": ["cdp_site.login_security.LockoutModelBackend"],
    }


def test_rest_framework_denies_by_default():
    assert settings.REST_FRAMEWORK["DEFAULT_PERMISSION_CLASSES"] == ["cdp_site.permissions.RoleModelPermissions"]
    assert settings.REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"] == [
        "cdp_site.authentication.HashedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ]


def test_development_keys_are_generated_once_into_var(tmp_path):
    from cdp_site.keys import load_or_create_dev_keys

    first = load_or_create_dev_keys(tmp_path)
    second = load_or_create_dev_keys(tmp_path)
    assert first == second
    assert (tmp_path / "dev-keys.json").stat().st_mode & 0o077 == 0
    assert len(first["pii_encryption_keys"]) == 1 and len(first["secret_key"]) >= 50


def test_pii_keys_rotate_first_encrypts_all_decrypt(settings):
    from cryptography.fernet import Fernet

    from consent import vault

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.PII_ENCRYPTION_KEYS = [old]
    token = vault.encrypt("ada@example.com")
    settings.PII_ENCRYPTION_KEYS = [new, old]
    assert vault.decrypt(token) == "ada@example.com"
    rotated = vault.rotate(token)
    settings.PII_ENCRYPTION_KEYS = [new]
    assert vault.decrypt(rotated) == "ada@example.com"


def test_processing_task_fits_django_q_timeouts():
    # The task stops on its own well before q2 would kill it, and lingers longer than the nudge
    # interval in production defaults (tests set both to zero).
    from cdp_site import settings as base

    assert base.PROCESSING_TASK_MAX_SECONDS < base.Q_CLUSTER["timeout"]
    assert base.PROCESSING_LINGER_SECONDS > base.PROCESSING_NUDGE_INTERVAL
