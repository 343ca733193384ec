"""The events table partitioned by month of occurred_at on PostgreSQL (profiles/partitions.py).

The state changes run on every database: the idempotency constraint gains occurred_at (a
partitioned table's unique indexes must hold the partition key) and two single-column indexes
that other indexes already cover go. Then, on PostgreSQL only, the table is rebuilt as a
partitioned one, its rows copied (a one-off cost, seconds per million events), and a daily
schedule keeps the coming months' partitions ready. SQLite keeps a plain table."""

import django.db.models.deletion
from django.db import migrations, models

SCHEDULE_NAME = "event_partitions_maintain"


def partition(apps, schema_editor):
    from profiles.partitions import convert_table

    convert_table(schema_editor, partitioned=True)


def unpartition(apps, schema_editor):
    from profiles.partitions import convert_table

    convert_table(schema_editor, partitioned=False)


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={
            "func": "profiles.tasks.event_partitions_maintain_task",
            "schedule_type": "D",
            "repeats": -1,
        },
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("identity", "0010_identifier_fillfactor"),
        ("profiles", "0004_source_audit"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="event", name="event_unique_per_raw_event"),
        migrations.AlterField(
            model_name="event",
            name="profile",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="events",
                to="profiles.profile",
            ),
        ),
        migrations.AlterField(
            model_name="event",
            name="raw_event",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="events",
                to="profiles.rawevent",
            ),
        ),
        migrations.AddConstraint(
            model_name="event",
            constraint=models.UniqueConstraint(
                fields=("raw_event", "sequence", "occurred_at"), name="event_unique_per_raw_event"
            ),
        ),
        migrations.RunPython(partition, unpartition),
        migrations.RunPython(create_schedule, delete_schedule),
    ]
