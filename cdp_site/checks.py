"""System checks that need the database: `manage.py check --database default`."""

from django.core.checks import Error, Tags, register
from django.db import DatabaseError


@register(Tags.database)
def deployment_keys_check(app_configs, databases=None, **kwargs):
    from cdp_site.deployment_keys import deployment_keys_compare

    if not databases:
        return []
    try:
        mismatched = deployment_keys_compare(record=False)
    except DatabaseError:
        return []  # not migrated yet: nothing was written with any key
    return [
        Error(
            f"{name} differs from the key this database was written with.",
            hint="Every web and worker machine must use the same value (README: several machines).",
            id="cdp_site.E001",
        )
        for name in mismatched
    ]
