from django.db import migrations

SCHEDULE_NAME = "segment_memberships_refresh"


def create_schedule(apps, schema_editor):
    # Recompute every published segment: catches what real-time re-evaluation cannot see (time
    # windows closing, segments referring to other segments) and heals anything missed.
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={
            "func": "segments.tasks.segment_memberships_refresh_task",
            "schedule_type": "I",
            "minutes": 15,
            "repeats": -1,
        },
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("segments", "0003_memberships"), ("django_q", "0018_task_success_index")]
    operations = [migrations.RunPython(create_schedule, delete_schedule)]
