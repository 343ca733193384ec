from django.db import migrations

SCHEDULE_NAME = "predictive_traits_refresh"


def create_schedule(apps, schema_editor):
    # Churn risk and predicted value are refitted on the latest history once a day.
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={
            "func": "segments.tasks.predictive_traits_refresh_task",
            "schedule_type": "D",
            "repeats": -1,
        },
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("segments", "0007_predictive_traits"), ("django_q", "0018_task_success_index")]
    operations = [migrations.RunPython(create_schedule, delete_schedule)]
