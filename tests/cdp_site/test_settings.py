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


def test_check_deploy_is_clean_under_production_settings(tmp_path):
    from cryptography.fernet import Fernet

    result = _run(
        ["check", "--deploy", "--fail-level", "WARNING"],
        {
            "DJANGO_SETTINGS_MODULE": "cdp_site.settings_production",
            "CDP_VAR_DIR": str(tmp_path),
            "SECRET_KEY": "x" * 20 + "-production-secret-key-with-enough-entropy-1234567890",
            "PII_ENCRYPTION_KEYS": f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}",
            "PII_BLIND_INDEX_KEY": "blind-index-key-0123456789",
            "TOMBSTONE_KEY": "tombstone-key-0123456789",
            "ALLOWED_HOSTS": "cdp.example.com",
        },
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


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
