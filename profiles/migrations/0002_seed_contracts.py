from django.db import migrations

from profiles.contracts import DEFAULT_CONTRACTS


def seed(apps, schema_editor):
    EventContract = apps.get_model("profiles", "EventContract")
    for event_type, (description, required, optional) in DEFAULT_CONTRACTS.items():
        EventContract.objects.get_or_create(
            event_type=event_type, defaults=dict(description=description, required=required, optional=optional)
        )


class Migration(migrations.Migration):
    dependencies = [("profiles", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
