"""The source audit: stored runs, redelivery counts, which sources sent each identifier, and the
daily audit schedule. SourceIdentifier is backfilled from what is already known: the first source
of every identifier (Identifier.source) and the identifiers events arrived with (Event.identifier)."""

from datetime import UTC, datetime, time, timedelta

import django.db.models.deletion
from django.db import migrations, models

SCHEDULE_NAME = "source_audit_daily"
SCHEDULE_AT = time(4, 15)  # UTC, after the night's retention and health runs

BACKFILL_FROM_IDENTIFIERS = """
INSERT INTO profiles_sourceidentifier (source_id, identifier_id, identifier_type_id, first_seen_at, last_seen_at)
SELECT i.source_id, i.id, i.identifier_type_id, i.first_seen_at, i.last_seen_at
FROM identity_identifier i
WHERE i.source_id IS NOT NULL
ON CONFLICT DO NOTHING
"""

BACKFILL_FROM_EVENTS = """
INSERT INTO profiles_sourceidentifier (source_id, identifier_id, identifier_type_id, first_seen_at, last_seen_at)
SELECT e.source_id, e.identifier_id, MIN(i.identifier_type_id), MIN(e.occurred_at), MAX(e.occurred_at)
FROM profiles_event e JOIN identity_identifier i ON i.id = e.identifier_id
WHERE e.identifier_id IS NOT NULL
GROUP BY e.source_id, e.identifier_id
ON CONFLICT DO NOTHING
"""


def backfill(apps, schema_editor):
    # Plain SQL, so a large table is copied by the database in two statements (both vendors accept
    # INSERT ... SELECT ... ON CONFLICT DO NOTHING; the WHERE keeps SQLite's parser unambiguous).
    schema_editor.execute(BACKFILL_FROM_IDENTIFIERS)
    schema_editor.execute(BACKFILL_FROM_EVENTS)


def _next_run() -> datetime:
    now = datetime.now(UTC)
    candidate = now.replace(hour=SCHEDULE_AT.hour, minute=SCHEDULE_AT.minute, second=0, microsecond=0)
    return candidate if candidate > now else candidate + timedelta(days=1)


def create_schedule(apps, schema_editor):
    # Created idempotently by name.
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={
            "func": "profiles.tasks_source_audit.source_audit_task",
            "schedule_type": "D",
            "repeats": -1,
            "next_run": _next_run(),
        },
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("identity", "0010_identifier_fillfactor"),
        ("profiles", "0003_sweeper_schedule"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="SourceAuditRun",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created_at", models.DateTimeField(db_index=True)),
                ("since", models.DateTimeField(help_text="Start of the window of raw events the figures cover.")),
                ("window_days", models.PositiveSmallIntegerField()),
                ("duration_ms", models.FloatField(default=0)),
                ("triggered_by", models.CharField(help_text="schedule, or user:<name>.", max_length=150)),
                ("figures", models.JSONField(blank=True, default=dict)),
            ],
            options={
                "ordering": ["-created_at", "-id"],
            },
        ),
        migrations.CreateModel(
            name="SourceDeliveryCount",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("day", models.DateField(help_text="UTC day of receipt.")),
                ("duplicates", models.PositiveBigIntegerField(default=0)),
                (
                    "source",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="profiles.source"
                    ),
                ),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("source", "day"), name="source_delivery_count_unique")],
            },
        ),
        migrations.CreateModel(
            name="SourceIdentifier",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("first_seen_at", models.DateTimeField()),
                ("last_seen_at", models.DateTimeField(help_text="When first stored; not moved by later sightings.")),
                (
                    "identifier",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="identity.identifier"
                    ),
                ),
                (
                    "identifier_type",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="identity.identifiertype",
                    ),
                ),
                (
                    "source",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="profiles.source"
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("source", "identifier"), name="source_identifier_unique")
                ],
            },
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.RunPython(create_schedule, delete_schedule),
    ]
