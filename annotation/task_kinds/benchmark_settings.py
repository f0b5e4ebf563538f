"""Settings shared by the study kinds that run on the built-in benchmark: its and the models' overrides."""
from __future__ import annotations

from django import forms

OVERRIDES = ("benchmark", "training")


class ClassListField(forms.CharField):
    """Class indices typed as ``"1, 4, 7"``; cleaned to a sorted list of distinct ints (empty = all classes)."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", "Class indices, comma-separated; empty = all classes.")
        super().__init__(**kwargs)

    def clean(self, value) -> list[int]:
        text = (super().clean(value) or "").strip()
        try:
            return sorted({int(p) for p in text.split(",") if p.strip()})
        except ValueError as exc:
            raise forms.ValidationError("give class indices as whole numbers separated by commas") from exc


class BenchmarkOverridesForm(forms.Form):
    """Base of a kind's settings form: JSON overrides of the benchmark and of the models' training."""

    benchmark = forms.JSONField(required=False, initial=dict,
                                help_text='Benchmark overrides, e.g. {"train_per_class": 200}.')
    training = forms.JSONField(required=False, initial=dict,
                               help_text='Training overrides per model, e.g. {"robust": {"epochs": 2}}.')

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.order_fields([f for f in self.fields if f not in OVERRIDES] + list(OVERRIDES))

    def clean(self) -> dict:
        data = super().clean()
        for name in OVERRIDES:
            if data.get(name) is None:
                data[name] = {}
            elif not isinstance(data[name], dict):
                self.add_error(name, "must be a JSON object")
        return data
