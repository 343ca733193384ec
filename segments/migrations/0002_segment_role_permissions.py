from django.db import migrations

from cdp_site.roles import sync_role_permissions


class Migration(migrations.Migration):
    """Marketers build and version segments."""

    dependencies = [
        ("segments", "0001_segments_and_versions"),
        ("cdp_site", "0002_roles"),
        ("identity", "0010_identifier_fillfactor"),
    ]
    operations = [migrations.RunPython(sync_role_permissions, migrations.RunPython.noop)]
