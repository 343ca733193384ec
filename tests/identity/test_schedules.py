"""The identity schedules exist (created by a migration) and name tasks that import."""

import pytest
from django.utils.module_loading import import_string
from django_q.models import Schedule

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("name", "func"),
    [
        ("identity_match_incremental", "identity.tasks.identity_match_task"),
        ("identity_metrics_snapshot", "identity.tasks_metrics.identity_metrics_snapshot_task"),
    ],
)
def test_identity_schedule(name, func):
    schedule = Schedule.objects.get(name=name)
    assert schedule.func == func
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 60, -1)
    assert callable(import_string(func))
