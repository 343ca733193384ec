from django.db import migrations, models

import cdp_site.models


class Migration(migrations.Migration):
    """Scopes, expiry and revocation time for API tokens. Existing tokens get every scope and no
    expiry (the column default fills them in); tokens already revoked in the admin (`is_active`
    off) stay revoked."""

    dependencies = [("cdp_site", "0007_pilot_gates")]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="scopes",
            field=models.JSONField(
                default=cdp_site.models.api_token_all_scopes, help_text="Any of: read, write, metrics."
            ),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="expires_at",
            field=models.DateTimeField(blank=True, help_text="Empty: never expires.", null=True),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="revoked_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="apitoken",
            name="is_active",
            field=models.BooleanField(default=True, help_text="Untick to revoke."),
        ),
    ]
