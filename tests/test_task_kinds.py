"""The plug-in registry and the ``image_choice`` answer schema."""
import pytest

from annotation.errors import AnswerInvalid
from annotation.task_kinds import TASK_KINDS, get_task_kind
from annotation.task_kinds.image_choice import parse_options

CONF = {"question": "q", "options": [["cat", "Cat"], ["dog", "Dog"]]}
KIND = get_task_kind("image_choice")


def test_image_choice_is_registered_and_unknown_kinds_name_the_known():
    assert "image_choice" in TASK_KINDS
    with pytest.raises(KeyError, match="known kinds: .*image_choice"):
        get_task_kind("nope")


def test_valid_answer_is_cleaned():
    cleaned = KIND.validate_answer({"choice": "dog", "reason": "  ears ", "confidence": "4", "token": "x"}, CONF)
    assert cleaned == {"choice": "dog", "reason": "ears", "confidence": 4}


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"reason": "", "confidence": 3}, "choice", "required"),
        ({"choice": "cow", "confidence": 3}, "choice", "not one of cat, dog"),
        ({"choice": "cat", "confidence": 9}, "confidence", "between 1 and 5"),
        ({"choice": "cat", "confidence": "high"}, "confidence", "not a whole number"),
        ({"choice": "cat"}, "confidence", "required"),
        ({"choice": "cat", "confidence": 2, "reason": "x" * 2001}, "reason", "at most 2000"),
        ({"choice": "cat", "confidence": 2, "label": "cat"}, "label", "unknown field"),
    ],
)
def test_bad_answers_name_the_field(payload, field, message):
    with pytest.raises(AnswerInvalid) as info:
        KIND.validate_answer(payload, CONF)
    assert field in info.value.errors
    assert message in info.value.errors[field]


def test_options_parser():
    assert parse_options("cat:A cat, dog") == [["cat", "A cat"], ["dog", "dog"]]
    for bad, msg in [("cat", "at least two"), ("cat, cat", "distinct"), ("Cat, dog", "lower-case")]:
        with pytest.raises(ValueError, match=msg):
            parse_options(bad)


@pytest.mark.parametrize("kind", ["feature_panel", "heatmap_validation", "misclassification", "class_assignment"])
def test_benchmark_kinds_take_json_object_overrides_last(kind):
    form_class = get_task_kind(kind).settings_form
    assert list(form_class().fields)[-2:] == ["benchmark", "training"]
    form = form_class(data={"benchmark": "[1, 2]", "training": "{}"})
    assert not form.is_valid()
    assert form.errors["benchmark"] == ["must be a JSON object"]
    assert "training" not in form.errors


def test_image_choice_settings_of_before_still_validate():
    """A client that posts the settings of before (the demo, scripts: no ``dataset``/``max_images``) keeps working."""
    from annotation.task_kinds.image_choice import ImageChoiceSettingsForm

    form = ImageChoiceSettingsForm(data={"question": "What is the main subject?", "options": "a:A, b:B",
                                         "images": ["astronaut"], "images_per_task": 1, "image_size": 256})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["max_images"] == 24 and not form.cleaned_data["dataset"]


@pytest.mark.parametrize(("benchmark", "training", "field", "message"), [
    ('{"train_per_clas": 200}', "{}", "benchmark", "unknown setting 'train_per_clas'"),
    ('{"image_size": "64"}', "{}", "benchmark", "image_size must be int, got '64'"),
    ('{"bias_rate": 1.5}', "{}", "benchmark", "bias_rate must lie in [0, 1]"),
    ("{}", '{"standrd": {}}', "training", "unknown model flavour 'standrd'"),
    ("{}", '{"robust": {"epochs": 0}}', "training", "training (robust model): 'epochs' must be >= 1"),
    ("{}", '{"standard": {"width": true}}', "training", "width must be int, got True"),
    ("{}", '{"standard": 3}', "training", "overrides must be a JSON object"),
])
def test_benchmark_overrides_are_checked_on_the_form(benchmark, training, field, message):
    """A misspelt or out-of-range override is refused on the form (and so in the API and the CLI), naming the
    setting, instead of failing the evidence job later."""
    form = get_task_kind("cluster_review").settings_form(data={"benchmark": benchmark, "training": training})
    assert not form.is_valid()
    assert message in " ".join(form.errors[field]), form.errors
    assert ({"benchmark", "training"} - {field}).isdisjoint(form.errors)


def test_valid_benchmark_overrides_pass_the_form():
    form = get_task_kind("feature_panel").settings_form(
        data={"benchmark": '{"train_per_class": 200, "classes": [0, 1, 2, 3, 4, 6]}',
              "training": '{"robust": {"epochs": 2, "eps": 0.25}, "standard": {"max_train_images": null}}'})
    form.is_valid()
    assert "benchmark" not in form.errors and "training" not in form.errors, form.errors
