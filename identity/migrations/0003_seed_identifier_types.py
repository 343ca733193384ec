from django.db import migrations

from identity.defaults import DEFAULT_BLOCKED_VALUES, DEFAULT_IDENTIFIER_TYPES


def seed(apps, schema_editor):
    IdentifierType = apps.get_model("identity", "IdentifierType")
    BlockedValue = apps.get_model("identity", "BlockedValue")
    for slug, (name, role, normaliser, limit, priority, is_pii) in DEFAULT_IDENTIFIER_TYPES.items():
        IdentifierType.objects.update_or_create(
            slug=slug,
            defaults=dict(name=name, role=role, normaliser=normaliser, limit_per_profile=limit, priority=priority, is_pii=is_pii),
        )
    for type_slug, value, reason in DEFAULT_BLOCKED_VALUES:
        identifier_type = IdentifierType.objects.get(slug=type_slug) if type_slug else None
        BlockedValue.objects.get_or_create(identifier_type=identifier_type, value=value, defaults={"reason": reason})


class Migration(migrations.Migration):
    dependencies = [("identity", "0002_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
