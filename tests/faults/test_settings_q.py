"""django-q2's configuration under both brokers, read from the settings module as production loads
it (the test settings add only `sync`). tests/cdp_site/test_settings.py pins the basics too."""

import importlib.util

import pytest

from activations import syncs
from cdp_site import settings as base

SETTINGS_FILE = base.__file__


def _load_settings(monkeypatch, **environment):
    for name in ("REDIS_URL", "Q_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("cdp_site_settings_probe", SETTINGS_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("redis", [False, True])
def test_q_cluster_retries_a_bounded_number_of_times_and_never_overlaps_a_running_task(monkeypatch, redis):
    module = _load_settings(monkeypatch, **({"REDIS_URL": "redis://127.0.0.1:6379/9"} if redis else {}))
    config = module.Q_CLUSTER
    assert config["max_attempts"] == 3  # 0, django-q2's default, retries forever
    assert config["retry"] > config["timeout"]  # else a slow task runs twice at once (ORM broker)
    assert config["ack_failures"] is True  # a failed task is not redelivered forever
    assert "sync" not in config
    if redis:
        assert config["redis"] == "redis://127.0.0.1:6379/9" and "orm" not in config
    else:
        assert config["orm"] == "default" and "redis" not in config


def test_long_tasks_stop_before_django_q2_would_kill_them():
    timeout = base.Q_CLUSTER["timeout"]
    # The processing task and a sync run's slice end on their own, well under the timeout.
    assert base.PROCESSING_TASK_MAX_SECONDS < timeout
    assert syncs.SLICE_SECONDS < timeout
    # A killed run is taken over only after its lease, longer than a heartbeat gap in a live run.
    assert syncs.LEASE_SECONDS > syncs.LONGEST_INLINE_WAIT


def test_test_settings_differ_only_by_sync_mode():
    from django.conf import settings

    assert {**settings.Q_CLUSTER, "sync": False} == {**base.Q_CLUSTER, "sync": False}
    assert settings.Q_CLUSTER["sync"] is True
