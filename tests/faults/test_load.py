"""The load test (profiles/loadtest.py, `manage.py loadtest`) at CI size: real gunicorn, a real
django-q2 cluster, concurrent senders on /v1/batch and a signed webhook endpoint, on the test
database. Zero 5xx, zero lost, zero duplicated, everything processed."""

import pytest

from profiles.loadtest import LoadTest, Plan
from tests.faults.conftest import database_url


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_ten_senders_for_eight_seconds_lose_and_duplicate_nothing(child_env):
    plan = Plan(senders=10, duration=8, batch=10, pause=0.1, resend_share=0.1, people=500)
    lines = []
    report = LoadTest(
        database_url=database_url(), plan=plan, workers=2, server_workers=2, server_threads=4, out=lines.append
    ).run()
    summary = "\n".join(lines + report.lines())
    assert report.ok, summary
    assert report.five_xx == 0 and report.lost == 0 and report.duplicated == 0, summary
    assert report.events_acked > 500 and report.redeliveries > 0, summary
    assert report.raw_stored == report.events_acked, summary
    assert report.events_out == report.events_acked == report.raw_by_status["processed"], summary
    assert report.accepted_per_second > 0 and report.processed_per_second > 0
