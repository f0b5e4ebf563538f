from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):

    dependencies = [
        ('annotation', '0009_task_stop_label'),
    ]

    operations = [
        migrations.AddField(
            model_name='job',
            name='artifact',
            field=models.ForeignKey(blank=True, help_text="The file the job made (an export archive), downloaded by the study's owner", null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='annotation.artifact'),
        ),
    ]
