import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from identity.models import IdentityLink, Merge
from profiles import demo
from profiles.models import Profile, RawEvent

ROOT = Path(__file__).resolve().parents[3]


def test_demo_messages_are_deterministic_and_messy():
    now = datetime(2026, 6, 1, tzinfo=UTC)
    first = list(demo.messages(200, seed=3, now=now))
    assert first == list(demo.messages(200, seed=3, now=now))
    identifies = [m for m in first if m["type"] == "identify"]
    emails = [m["traits"]["email"] for m in identifies if "email" in m.get("traits", {})]
    assert any(e != e.strip().lower() for e in emails)  # case and whitespace variants
    assert any(m["type"] == "page" and "userId" not in m for m in first)  # anonymous browsing
    assert len({m["messageId"] for m in first}) == len(first)


@pytest.mark.django_db
def test_demo_setup_loads_through_the_pipeline_once_and_creates_logins(capsys):
    call_command("demo_setup", "--people", "60")
    raw_count = RawEvent.objects.count()
    assert raw_count > 300
    assert RawEvent.objects.exclude(status=RawEvent.PROCESSED).count() == 0
    assert Profile.objects.filter(status=Profile.ACTIVE).count() >= 60
    assert Merge.objects.filter(rule="anonymous_into_known").exists()
    user = get_user_model().objects.get(username="marketer")
    assert user.check_password("demo-marketer-cdp") and list(user.groups.values_list("name", flat=True)) == ["marketer"]
    assert get_user_model().objects.get(username="admin").is_superuser
    from activations.models import Sync

    [run] = Sync.objects.get(slug="regulars-to-warehouse").runs.all()
    assert run.status == "completed" and run.triggered_by == "demo_setup"

    call_command("demo_setup", "--people", "60")
    assert RawEvent.objects.count() == raw_count
    assert get_user_model().objects.count() == 5
    assert {s for s in RawEvent.objects.values_list("source__kind", flat=True).distinct()} == {
        "tracking",
        "mindbody",
        "stripe",
        "shopify",
    }
    assert "Demo data already loaded." in capsys.readouterr().out
    assert IdentityLink.objects.exists()


def test_demo_setup_refuses_production(settings):
    settings.IS_PRODUCTION = True
    with pytest.raises(CommandError, match="production"):
        call_command("demo_setup")


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.live
def test_serve_starts_web_and_worker_and_stops_both_on_ctrl_c(tmp_path):
    port = _free_port()
    env = {**os.environ, "CDP_VAR_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/serve.sqlite3"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
    serve = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline, status = time.monotonic() + 60, None
        while time.monotonic() < deadline and status is None:
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=2).status
            except OSError:
                time.sleep(0.3)
        assert status == 200
        children = subprocess.run(["pgrep", "-P", str(serve.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) == 2
        serve.send_signal(signal.SIGINT)
        output, _ = serve.communicate(timeout=30)
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
    assert serve.returncode == 0
    assert f"http://127.0.0.1:{port}/" in output and "marketer" in output
    for pid in children:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_all_sources_shapes_pass_their_mappers():
    from collections import Counter
    from types import SimpleNamespace

    from profiles.mappers import mapper_for

    now = datetime(2026, 6, 1, tzinfo=UTC)
    kinds, mapped = Counter(), Counter()
    for item in demo.all_sources(120, seed=5, now=now):
        kinds[item.kind] += 1
        raw = SimpleNamespace(payload=item.payload, topic=item.topic, headers=item.headers, received_at=now)
        for event in mapper_for(item.kind)(raw):
            mapped[event.type] += 1
    assert set(kinds) == {"tracking", "mindbody", "stripe", "shopify"}
    for event_type in ["customer.created", "booking.created", "class.attended", "payment.succeeded", "order.completed"]:
        assert mapped[event_type] > 0, event_type


@pytest.mark.django_db
def test_generate_data_writes_pending_raw_events_for_every_source(capsys):
    call_command("generate_data", "--profiles", "40", "--seed", "11", "--chunk", "100")
    out = capsys.readouterr().out
    written = RawEvent.objects.count()
    assert f"{written} raw events for 40 people" in out
    assert set(RawEvent.objects.values_list("source__slug", flat=True)) == {
        "demo-web-app",
        "demo-mindbody",
        "demo-stripe",
        "demo-shopify",
    }
    assert RawEvent.objects.exclude(status=RawEvent.PENDING).count() == 0
    with pytest.raises(CommandError, match="another --seed"):
        call_command("generate_data", "--profiles", "40", "--seed", "11")
    call_command("process_events")
    assert RawEvent.objects.filter(status=RawEvent.PROCESSED).count() == written
