from django.db import migrations

from cdp_site.roles import sync_role_permissions


class Migration(migrations.Migration):
    """Review, unmerge, matching and metrics permissions for the roles that use them."""

    dependencies = [("identity", "0006_review_unmerge_matching"), ("cdp_site", "0002_roles")]
    operations = [migrations.RunPython(sync_role_permissions, migrations.RunPython.noop)]
