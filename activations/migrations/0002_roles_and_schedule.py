from django.db import migrations

from cdp_site.roles import sync_role_permissions

SCHEDULE_NAME = "activations_tick"


def create_schedule(apps, schema_editor):
    # Every minute: start scheduled syncs, resume runs nobody holds, sweep triggers, retry sends.
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={"func": "activations.tasks.activations_tick_task", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    """Marketers and integration engineers run syncs and triggers; privacy officers read them."""

    dependencies = [
        ("activations", "0001_initial"),
        ("segments", "0008_predictive_schedule"),
        ("consent", "0003_tombstone"),
        ("django_q", "0018_task_success_index"),
    ]
    operations = [
        migrations.RunPython(sync_role_permissions, migrations.RunPython.noop),
        migrations.RunPython(create_schedule, delete_schedule),
    ]
