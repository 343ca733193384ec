from django.db import migrations

# name: (task, minutes between runs)
SCHEDULES = {
    # New and changed profiles against everyone, so probabilistic matches and review items
    # appear within the hour; a full pass is `manage.py identity_match --full`.
    "identity_match_incremental": ("identity.tasks.identity_match_task", 60),
    # Match-rate figures kept for the trend lines on the metrics page and API.
    "identity_metrics_snapshot": ("identity.tasks_metrics.identity_metrics_snapshot_task", 60),
}


def create_schedules(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for name, (func, minutes) in SCHEDULES.items():
        Schedule.objects.update_or_create(
            name=name, defaults={"func": func, "schedule_type": "I", "minutes": minutes, "repeats": -1}
        )


def delete_schedules(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name__in=SCHEDULES).delete()


class Migration(migrations.Migration):
    dependencies = [("identity", "0007_identity_role_permissions"), ("django_q", "0018_task_success_index")]
    operations = [migrations.RunPython(create_schedules, delete_schedules)]
