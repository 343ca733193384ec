from django.db import migrations

from cdp_site.roles import sync_role_permissions


class Migration(migrations.Migration):
    dependencies = [
        ("cdp_site", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("identity", "0003_seed_identifier_types"),
        ("profiles", "0002_seed_contracts"),
        ("consent", "0002_initial"),
    ]
    operations = [migrations.RunPython(sync_role_permissions, migrations.RunPython.noop)]
