"""A task's agreement (largest answer count over the answers counted), stored so the task grid filters and sorts
on it in the database; results aggregated before this field existed get it from their counts."""
from django.db import migrations, models


def backfill(apps, schema_editor):
    StudyResult = apps.get_model("annotation", "StudyResult")
    changed = []
    for result in StudyResult.objects.filter(n_answers__gt=0).only("pk", "counts", "n_answers").iterator():
        if result.counts:
            result.agreement = round(max(result.counts.values()) / result.n_answers, 6)
            changed.append(result)
    StudyResult.objects.bulk_update(changed, ["agreement"], batch_size=1000)


class Migration(migrations.Migration):
    dependencies = [("annotation", "0012_consent")]

    operations = [
        migrations.AddField(
            model_name="studyresult", name="agreement",
            field=models.FloatField(blank=True, db_index=True, null=True,
                                    help_text="Share of the counted answers that chose the most chosen value."),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
