"""Forms of the researcher and worker pages."""
from __future__ import annotations

from django import forms
from django.contrib.auth.password_validation import validate_password
from django.db import transaction

from annotation.errors import ApplicationError
from annotation.models import RegisteredModel, Study, Worker
from annotation.recruiters import choices
from annotation.services import registry
from annotation.task_kinds import TASK_KINDS


class StudyForm(forms.Form):
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=())
    workers_per_task = forms.IntegerField(min_value=1, max_value=50,
                                          initial=Study._meta.get_field("workers_per_task").default)
    reward_cents = forms.IntegerField(min_value=0, max_value=10_000, initial=0, help_text="Reward per task, in cents.")
    assignment_minutes = forms.IntegerField(min_value=1, max_value=24 * 60, initial=30)
    backend = forms.ChoiceField(choices=(), initial=Worker.Backend.INTERNAL, help_text="Where the workers come from.")
    # Quality control (all optional; empty means the default).
    gold_rate = forms.FloatField(min_value=0, max_value=0.9, required=False,
                                 help_text="Share of each worker's tasks that are gold tasks (0 = none; "
                                           "empty = the kind's default: 0.2 for feature panels, else 0).")
    gold_min_accuracy = forms.FloatField(min_value=0, max_value=1, required=False, initial=0.6,
                                         help_text="Workers below this gold accuracy are excluded; "
                                                   "answers kept, flagged.")
    gold_min_answers = forms.IntegerField(min_value=1, max_value=100, required=False, initial=3,
                                          help_text="Gold answers before a worker is judged.")
    max_tasks_per_worker = forms.IntegerField(min_value=1, required=False, help_text="Cap per worker; empty = none.")
    min_answer_seconds = forms.FloatField(min_value=0, required=False, initial=0,
                                          help_text="Faster answers are kept but flagged and not counted.")
    max_answer_seconds = forms.FloatField(min_value=1, required=False,
                                          help_text="Slower answers are flagged; empty = none.")
    early_stopping = forms.BooleanField(
        required=False, help_text="Stop a task once its label with all answers is predicted with 97.5% confidence "
                                  "(answers weighted by worker reliability).")
    completion_code = forms.RegexField(regex=r"^[A-Za-z0-9]{0,64}$", required=False,
                                       help_text="Prolific completion code; empty = made for you.")
    consent_text = forms.CharField(
        required=False, max_length=20_000, widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Information and consent text (e.g. your ethics board's wording). Each worker reads it once "
                  "before their first task and agrees or declines; answers are recorded and exported. "
                  "Empty = no consent page.")
    prolific_study_id = forms.RegexField(regex=r"^[A-Za-z0-9]{0,64}$", required=False,
                                         help_text="Prolific's id of the study (required to launch on Prolific): "
                                                   "entries with another STUDY_ID are refused.")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = [(name, kind.title) for name, kind in sorted(TASK_KINDS.items())]
        self.fields["backend"].choices = choices()

    def clean(self):
        data = super().clean()
        low, high = data.get("min_answer_seconds") or 0, data.get("max_answer_seconds")
        if high is not None and high <= low:
            self.add_error("max_answer_seconds", "must be longer than the minimum answer time")
        return data

    def recruitment(self) -> dict:
        """The recruiter options of ``study_create`` (the Prolific study id, when given)."""
        study_id = self.cleaned_data.get("prolific_study_id")
        return {"prolific_study_id": study_id} if study_id else {}

    def quality_settings(self) -> dict:
        """The quality-control and worker-page keyword arguments of ``study_create``, defaults filled in."""
        data = self.cleaned_data
        return {
            "gold_rate": data.get("gold_rate"),
            "gold_min_accuracy": 0.6 if data.get("gold_min_accuracy") is None else data["gold_min_accuracy"],
            "gold_min_answers": data.get("gold_min_answers") or 3,
            "max_tasks_per_worker": data.get("max_tasks_per_worker"),
            "min_answer_seconds": data.get("min_answer_seconds") or 0.0,
            "max_answer_seconds": data.get("max_answer_seconds"),
            "early_stopping": bool(data.get("early_stopping")),
            "completion_code": data.get("completion_code") or "",
            "consent_text": data.get("consent_text") or "",
        }


class SignupForm(forms.Form):
    username = forms.RegexField(regex=r"^[A-Za-z0-9_.-]{3,40}$", max_length=40,
                                help_text="3-40 letters, digits, dots, dashes or underscores.")
    password = forms.CharField(widget=forms.PasswordInput, min_length=8)

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        validate_password(password)
        return password


def _floats(text: str) -> list[float] | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return [float(v) for v in text.replace(",", " ").split()]
    except ValueError as exc:
        raise forms.ValidationError("give three numbers, e.g. 0.485 0.456 0.406") from exc


class ModelRegistrationForm(forms.Form):
    """A researcher's checkpoint; registration loads it once (see ``services.registry.model_register``)."""

    name = forms.RegexField(regex=r"^[A-Za-z0-9_.-]{1,100}$", help_text="Letters, digits, dots, dashes, underscores.")
    title = forms.CharField(max_length=200, required=False)
    architecture = forms.CharField(max_length=100, initial="resnet50",
                                   help_text="Any torchvision classification model (resnet18, resnet50, vgg16, "
                                             "...) or demo_resnet.")
    checkpoint = forms.CharField(max_length=1000, required=False,
                                 help_text="A path on the server, or s3://bucket/key.")
    checkpoint_file = forms.FileField(required=False, label="or upload a checkpoint",
                                      help_text="A .pt/.pth file: a state_dict or a checkpoint dict, read with "
                                                "torch.load(weights_only=True).")
    format = forms.ChoiceField(choices=RegisteredModel.Format.choices, initial="auto")
    input_size = forms.IntegerField(min_value=8, max_value=1024, required=False,
                                    help_text="Empty: recorded in the checkpoint, else 224.")
    mean = forms.CharField(required=False, help_text="Empty: the robustness normalizer's, else ImageNet's.")
    std = forms.CharField(required=False)

    def clean_mean(self):
        return _floats(self.cleaned_data["mean"])

    def clean_std(self):
        return _floats(self.cleaned_data["std"])

    def clean(self):
        return _one_source(self, "checkpoint", "checkpoint_file", "a checkpoint path or s3:// key")


class DatasetRegistrationForm(forms.Form):
    """A researcher's ImageFolder; registration scans it once (see ``services.registry.dataset_register``)."""

    name = forms.RegexField(regex=r"^[A-Za-z0-9_.-]{1,100}$", help_text="Letters, digits, dots, dashes, underscores.")
    title = forms.CharField(max_length=200, required=False)
    root = forms.CharField(max_length=1000, required=False,
                           help_text="A folder on the server with one sub-folder per class, or an s3://bucket/prefix.")
    val_root = forms.CharField(max_length=1000, required=False, help_text="Optional validation folder, same layout.")
    archive = forms.FileField(required=False, label="or upload the images",
                              help_text="A .zip or .tar(.gz) of class folders, or of train/ and val/ holding them.")
    class_metadata = forms.CharField(max_length=1000, required=False,
                                     help_text="Optional CSV: index, folder, name (+ synonyms, supercategory, "
                                               "definition, links), or Salient ImageNet's class_metadata.csv.")
    class_metadata_file = forms.FileField(required=False, label="or upload the class metadata CSV")

    def clean(self):
        data = _one_source(self, "root", "archive", "a folder or s3:// prefix")
        if data.get("archive") and data.get("val_root"):
            self.add_error("val_root", "with an upload, put the validation images in the archive's val/ folder")
        if data.get("class_metadata") and data.get("class_metadata_file"):
            self.add_error("class_metadata_file", "give the class metadata as a path or as a file, not both")
        return data


def _one_source(form: forms.Form, path_field: str, file_field: str, what: str) -> dict:
    """A registration names its files either on the server (or S3) or as an upload, never both or neither."""
    data = form.cleaned_data
    if bool(data.get(path_field)) == bool(data.get(file_field)):
        form.add_error(file_field, f"give {what} or upload a file (one of the two)")
    return data


def registry_admin_form(base: type[forms.ModelForm], kind: str) -> type[forms.ModelForm]:
    """The admin's form of a registry entry: saving registers through the services (load/scan, refusals)."""

    class RegistryAdminForm(base):
        def clean(self):
            data = super().clean()
            if self.errors or self.instance.pk:
                return data
            fields = {k: data.get(k) for k in (("name", "title", "architecture", "checkpoint", "format", "input_size")
                                                if kind == "model" else ("name", "title", "root", "val_root",
                                                                         "class_metadata"))}
            fields = {k: v for k, v in fields.items() if v not in (None, "")}
            try:
                with transaction.atomic():
                    entry = (registry.model_register if kind == "model" else registry.dataset_register)(
                        owner=data.get("owner"), **fields)
                    transaction.set_rollback(True)  # the admin saves the instance below
            except ApplicationError as exc:
                raise forms.ValidationError(exc.message) from exc
            for name in self.instance._meta.fields:
                if name.name not in ("id", "created_at", "updated_at"):
                    setattr(self.instance, name.attname, getattr(entry, name.attname))
            return data

    return RegistryAdminForm
