from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('activations', '0004_lookup_indexes'),
    ]

    operations = [
        migrations.AddField(
            model_name='destination',
            name='next_send_at',
            field=models.DateTimeField(blank=True, editable=False, help_text='The next free send slot (database clock), for every sender.', null=True),
        ),
    ]
