"""Forms of the researcher and worker pages."""
from __future__ import annotations

from django import forms
from django.contrib.auth.password_validation import validate_password

from annotation.models import Worker
from annotation.task_kinds import TASK_KINDS


class StudyForm(forms.Form):
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=())
    workers_per_task = forms.IntegerField(min_value=1, max_value=50, initial=5)
    reward_cents = forms.IntegerField(min_value=0, max_value=10_000, initial=0, help_text="Reward per task, in cents.")
    assignment_minutes = forms.IntegerField(min_value=1, max_value=24 * 60, initial=30)
    backend = forms.ChoiceField(choices=[(Worker.Backend.INTERNAL, "Internal pool")], initial=Worker.Backend.INTERNAL)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = [(name, kind.title) for name, kind in sorted(TASK_KINDS.items())]


class SignupForm(forms.Form):
    username = forms.RegexField(regex=r"^[A-Za-z0-9_.-]{3,40}$", max_length=40,
                                help_text="3-40 letters, digits, dots, dashes or underscores.")
    password = forms.CharField(widget=forms.PasswordInput, min_length=8)

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        validate_password(password)
        return password
