import consent.fields
import django.core.validators
import django.db.models.deletion
from django.db import migrations, models

from cdp_site.roles import sync_role_permissions

SCHEDULE_NAME = "operations_snapshot"


def create_schedule(apps, schema_editor):
    # Created idempotently by name: every 5 minutes, a snapshot of the operational figures, then the
    # alert rules are evaluated against it (cdp_site.tasks_operations).
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={
            "func": "cdp_site.tasks_operations.operations_snapshot_task",
            "schedule_type": "I",
            "minutes": 5,
            "repeats": -1,
        },
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    """The health dashboard's snapshots (every 5 minutes), alert rules and alerts."""

    dependencies = [
        ("cdp_site", "0005_role_permissions"),
        ("django_q", "0018_task_success_index"),
    ]
    operations = [
        migrations.CreateModel(
            name='OperationsSnapshot',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('captured_at', models.DateTimeField(db_index=True)),
                ('slot', models.BigIntegerField(help_text='Unix time // 300: the 5-minute slot.', unique=True)),
                ('figures', models.JSONField(default=dict)),
                ('duration_ms', models.PositiveIntegerField(default=0, help_text='How long collecting the figures took.')),
            ],
            options={
                'ordering': ['-captured_at', '-id'],
                'get_latest_by': 'captured_at',
            },
        ),
        migrations.CreateModel(
            name='AlertRule',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=100)),
                ('metric', models.CharField(help_text='A key of the metric catalogue.', max_length=64)),
                ('label', models.CharField(blank=True, help_text='Per-source or per-destination metrics: the slug to watch. Blank: every one, each alerting on its own.', max_length=100)),
                ('comparison', models.CharField(choices=[('above', 'above'), ('below', 'below')], default='above', max_length=8)),
                ('threshold', models.FloatField()),
                ('consecutive', models.PositiveSmallIntegerField(default=1, help_text='Raise only when the condition holds in this many consecutive snapshots (5 minutes apart).', validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(288)])),
                ('webhook_url', models.URLField(blank=True, max_length=500)),
                ('webhook_secret', consent.fields.EncryptedTextField(blank=True, help_text='Standard Webhooks signing secret (encrypted).')),
                ('is_active', models.BooleanField(default=True)),
                ('created_by', models.CharField(help_text='user:<name> or api:<name>.', max_length=150)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'ordering': ['name', 'id'],
                'constraints': [models.CheckConstraint(condition=models.Q(('consecutive__gte', 1), ('consecutive__lte', 288)), name='alert_rule_consecutive_range'), models.CheckConstraint(condition=models.Q(('comparison__in', ['above', 'below'])), name='alert_rule_comparison')],
            },
        ),
        migrations.CreateModel(
            name='Alert',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('label', models.CharField(blank=True, max_length=100)),
                ('status', models.CharField(choices=[('open', 'Open'), ('resolved', 'Resolved')], default='open', max_length=16)),
                ('value_at_raise', models.FloatField()),
                ('last_value', models.FloatField(blank=True, null=True)),
                ('raised_at', models.DateTimeField(db_index=True)),
                ('resolved_at', models.DateTimeField(blank=True, null=True)),
                ('resolution', models.CharField(blank=True, help_text='Why it resolved.', max_length=200)),
                ('webhook_event', models.CharField(blank=True, choices=[('alert.raised', 'alert.raised'), ('alert.resolved', 'alert.resolved')], help_text='The latest event sent.', max_length=32)),
                ('webhook_status', models.CharField(blank=True, choices=[('', 'No webhook'), ('pending', 'Pending'), ('delivered', 'Delivered'), ('failed', 'Failed')], max_length=16)),
                ('webhook_attempts', models.PositiveIntegerField(default=0, help_text='Attempts for the latest event.')),
                ('webhook_last_error', models.CharField(blank=True, max_length=500)),
                ('webhook_queued_at', models.DateTimeField(blank=True, null=True)),
                ('webhook_delivered_at', models.DateTimeField(blank=True, null=True)),
                ('acknowledged_by', models.CharField(blank=True, max_length=150)),
                ('acknowledged_at', models.DateTimeField(blank=True, null=True)),
                ('rule', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='alerts', to='cdp_site.alertrule')),
            ],
            options={
                'ordering': ['-raised_at', '-id'],
                'indexes': [models.Index(fields=['status', 'raised_at'], name='cdp_site_al_status_5950d2_idx')],
                'constraints': [models.UniqueConstraint(condition=models.Q(('status', 'open')), fields=('rule', 'label'), name='alert_one_open_per_rule_label'), models.CheckConstraint(condition=models.Q(('status__in', ['open', 'resolved'])), name='alert_status')],
            },
        ),
        migrations.RunPython(create_schedule, delete_schedule),
        # Last: the roles get the new models' permissions (cdp_site/roles.py already lists them).
        migrations.RunPython(sync_role_permissions, migrations.RunPython.noop),
    ]
