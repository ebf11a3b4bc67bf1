from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('training', '0006_run_product_help'),
    ]

    operations = [
        migrations.AddField(
            model_name='round',
            name='sweep',
            field=models.JSONField(blank=True, default=dict, help_text='The KL coefficients of a sweep round; empty otherwise.'),
        ),
    ]
