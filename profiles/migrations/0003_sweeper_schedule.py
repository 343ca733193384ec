from django.db import migrations

SCHEDULE_NAME = "raw_events_sweep"


def create_schedule(apps, schema_editor):
    # Created idempotently by name: the sweeper claims raw events left pending by a lost task.
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={"func": "profiles.tasks.raw_events_sweep_task", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("profiles", "0002_seed_contracts"), ("django_q", "0018_task_success_index")]
    operations = [migrations.RunPython(create_schedule, delete_schedule)]
