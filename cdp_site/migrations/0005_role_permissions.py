from django.db import migrations

from cdp_site.roles import sync_role_permissions


class Migration(migrations.Migration):
    """Roles after the privacy issue: the audit log, consent recording and propagation, privacy
    requests, retention and profile health (cdp_site/roles.py lists who gets what)."""

    dependencies = [
        ("cdp_site", "0004_governance"),
        ("consent", "0006_lookup_indexes"),
        ("activations", "0004_lookup_indexes"),
    ]
    operations = [migrations.RunPython(sync_role_permissions, migrations.RunPython.noop)]
