from django.db import migrations

from cdp_site.roles import sync_role_permissions


class Migration(migrations.Migration):
    """Marketers define computed traits."""

    dependencies = [("segments", "0005_computed_traits")]
    operations = [migrations.RunPython(sync_role_permissions, migrations.RunPython.noop)]
