from django.db import migrations, models

from consent.sealing import SEALED_INDEX_PREDICATE_PG, SEALED_INDEX_PREDICATE_SQLITE

INDEX = "traitvalue_sealed_token"


def create_index(apps, schema_editor):
    """Partial expression index over trait values that are tokens: the deletion step asks whether
    anyone else still holds a token before it forgets the sealed value."""
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON profiles_traitvalue ((value #>> '{{}}')) "
            f"WHERE {SEALED_INDEX_PREDICATE_PG}"
        )
    elif vendor == "sqlite":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON profiles_traitvalue (json_extract(value, '$')) "
            f"WHERE {SEALED_INDEX_PREDICATE_SQLITE}"
        )


def drop_index(apps, schema_editor):
    schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


def seal_existing(apps, schema_editor):
    """Traits stored before sealing existed: seal them in place (idempotent)."""
    from consent.sealing import seal_stored_traits

    seal_stored_traits(
        Profile=apps.get_model("profiles", "Profile"),
        TraitValue=apps.get_model("profiles", "TraitValue"),
        SealedValue=apps.get_model("consent", "SealedValue"),
    )


class Migration(migrations.Migration):
    dependencies = [("consent", "0006_lookup_indexes"), ("profiles", "0003_sweeper_schedule")]

    operations = [
        migrations.CreateModel(
            name="SealedValue",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "token",
                    models.CharField(help_text="pii: + HMAC of the canonical value.", max_length=68, unique=True),
                ),
                (
                    "ciphertext",
                    models.TextField(help_text="Fernet token of the JSON value, under PII_ENCRYPTION_KEYS."),
                ),
                ("created_at", models.DateTimeField()),
            ],
        ),
        migrations.RunPython(create_index, drop_index),
        migrations.RunPython(seal_existing, migrations.RunPython.noop),
    ]
