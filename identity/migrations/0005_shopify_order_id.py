from django.db import migrations


def seed(apps, schema_editor):
    apps.get_model("identity", "IdentifierType").objects.get_or_create(
        slug="shopify_order_id",
        defaults=dict(name="Shopify order id", role="handle", normaliser="exact", limit_per_profile=None, priority=20),
    )


class Migration(migrations.Migration):
    dependencies = [("identity", "0004_identifier_lookup_hash_first")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
