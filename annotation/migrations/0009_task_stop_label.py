from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('annotation', '0008_task_exclusion_group'),
    ]

    operations = [
        migrations.AddField(
            model_name='task',
            name='stop_label',
            field=models.CharField(blank=True, default='', help_text='The label early stopping predicted when it stopped the task.', max_length=200),
        ),
        migrations.AlterField(
            model_name='task',
            name='stopped_early',
            field=models.BooleanField(default=False, help_text='Early stopping lowered ``wanted``: label predicted.'),
        ),
        migrations.AlterField(
            model_name='study',
            name='early_stopping',
            field=models.BooleanField(default=False, help_text="Stop collecting a task's answers once its full-answer label is predicted well enough."),
        ),
    ]
