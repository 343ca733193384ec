from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("cdp_site", "0005_role_permissions")]
    operations = []
