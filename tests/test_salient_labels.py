"""The Salient kinds without a model: heatmap-validation labels (App. D) and the feature panel's settings."""
import pandas as pd


def test_heatmap_validation_reports_a_set_without_a_strict_majority_as_undecided():
    """App. D counts a feature validated when the majority of its workers answer "same": a 2/1/1/1/… split
    of five is undecided in the CSV/JSON, the summary and the results partial, not "same" by plurality."""
    from django.template.loader import render_to_string

    from annotation.task_kinds import get_task_kind
    from annotation.task_kinds.base import TaskRecord
    from annotation.task_kinds.heatmap_validation import validation_summary, validation_table

    kind = get_task_kind("heatmap_validation")
    splits = {1: ["same", "same", "different", "a_unclear", "b_unclear"],
              2: ["same", "same", "same", "different", "b_unclear"]}
    answers = pd.DataFrame([(task, f"w{i}", label) for task, votes in splits.items() for i, label in enumerate(votes)],
                           columns=["task", "worker", "label"])
    labels = kind.aggregate(answers, {"workers_per_task": 5}).reset_index()
    tasks = {pk: TaskRecord(pk=pk, key=f"c0-f{pk}", payload={"cls": 0, "class_name": "shirt", "feature": pk,
                                                              "set_a": [], "set_b": []}) for pk in splits}
    table = validation_table(tasks, labels)
    assert table.set_index("feature")["label"].to_dict() == {1: "undecided", 2: "same"}
    summary = validation_summary(table)
    assert (summary["decided"], summary["undecided"], summary["validated"]) == (1, 1, 1)
    assert summary["validated_percent"] == 50.0  # an undecided feature is not validated
    page = render_to_string(kind.results_template, {"summary": summary, "features": table.to_dict("records"),
                                                    "study": {"settings": {"pool": 65}}})
    assert '<span id="undecided">1</span> undecided' in page
    assert '<tr data-key="c0-f1"><td>shirt</td><td>1</td><td>undecided</td>' in page


def test_panel_answers_are_typed_as_text_or_json_and_refused_when_malformed():
    """The researcher's solved examples and gold answers: ``c<class>-f<feature>=<answer>`` (form, CLI ``--set``)
    or a JSON object/list (API); a bad key or answer is refused naming it."""
    from annotation.task_kinds.feature_panel import FeaturePanelSettingsForm

    def cleaned(**values):
        form = FeaturePanelSettingsForm({"dataset": "benchmark", "model": "robust", "k_features": 5, "k_images": 5,
                                         "pool": 65, "attack_steps": 100, "reason_min_length": 5, **values})
        form.fields["model"].choices = [("robust", "robust")]
        return form.cleaned_data if form.is_valid() else form.errors

    data = cleaned(solved_examples="c3-f412=background, c7-f88=main_object",
                   gold_answers={"c1-f2": "separate_object"}, allow_without_gold="on")
    assert data["solved_examples"] == {"c3-f412": "background", "c7-f88": "main_object"}
    assert data["gold_answers"] == {"c1-f2": "separate_object"} and data["allow_without_gold"] is True
    assert cleaned(gold_answers=["c1-f2=main_object"])["gold_answers"] == {"c1-f2": "main_object"}
    assert cleaned()["solved_examples"] == {} and cleaned()["allow_without_gold"] is False
    for bad, message in (("c3-f412=sky", "must be one of main_object, separate_object, background, not 'sky'"),
                         ("class3=background", "'class3' is not a panel key"), ("c3-f412", "must look like")):
        errors = cleaned(solved_examples=bad)
        assert message in errors["solved_examples"][0], errors
    assert "not 'sky'" in cleaned(gold_answers="c1-f2=sky")["gold_answers"][0]


def _panel_study(researcher, name, backend="prolific", gold_rate=0.2, solved=(), gold=0, **settings):
    from annotation import services
    from annotation.models import Study, Task

    study = services.study_create(owner=researcher, name=name, kind="feature_panel", backend=backend,
                                  gold_rate=gold_rate, recruitment={"prolific_study_id": "p1"}, settings=settings)
    payload = {"cls": 0, "feature": 1, "solved": [{"answer": "background"}] if solved else []}
    Task.objects.create(study=study, key="c0-f1", payload=payload)
    for i in range(gold):
        Task.objects.create(study=study, key=f"gold-c0-f{i}", payload=payload, truth={"main": "background"},
                            is_gold=True)
    Study.objects.filter(pk=study.pk).update(state=Study.State.READY)
    study.refresh_from_db()
    return study


def test_a_crowd_site_feature_panel_study_needs_solved_examples_and_gold_unless_told_otherwise(researcher):
    """The paper's HIT always shows solved examples and checks 60 % gold answers (App. C): a feature-panel
    study without them is refused at launch on MTurk/Prolific, unless ``allow_without_gold`` says so."""
    import pytest

    from annotation import services
    from annotation.errors import ApplicationError

    gold = "gold panels mixed in at a gold rate above 0"
    cases = {"bare": ({}, f"solved examples and {gold}"), "no-gold": ({"solved": True}, gold),
             "no-solved": ({"gold": 1}, "solved examples"),
             "gold-rate-0": ({"solved": True, "gold": 1, "gold_rate": 0.0}, gold)}
    for name, (case, missing) in cases.items():
        with pytest.raises(ApplicationError, match="allow_without_gold") as err:
            services.study_launch(study=_panel_study(researcher, name, **case))
        assert err.value.message.startswith(f"a feature-panel study on prolific needs {missing}: ")
    for name, case in {"complete": {"solved": True, "gold": 1}, "told": {"allow_without_gold": True},
                       "own-pool": {"backend": "internal"}}.items():
        assert services.study_launch(study=_panel_study(researcher, name, **case)).state == "live"


def test_the_cli_and_the_api_take_solved_examples_gold_answers_and_allow_without_gold(researcher):
    from django.core.management import call_command

    from annotation.api.creation import study_create_from_json
    from annotation.models import Study

    call_command("study", "create", "cli", owner=researcher.username, kind="feature_panel",
                 set=["solved_examples=c3-f412=background, c7-f88=main_object", "gold_answers=c1-f2=separate_object",
                      "allow_without_gold=true"])
    cli = Study.objects.get(name="cli").settings
    assert cli["solved_examples"] == {"c3-f412": "background", "c7-f88": "main_object"}
    assert cli["gold_answers"] == {"c1-f2": "separate_object"} and cli["allow_without_gold"] is True
    api = study_create_from_json(owner=researcher, data={
        "name": "api", "kind": "feature_panel", "workers_per_task": 5, "reward_cents": 0, "assignment_minutes": 30,
        "backend": "internal", "settings": {"solved_examples": {"c3-f412": "background"}}}).settings
    assert api["solved_examples"] == {"c3-f412": "background"} and api["allow_without_gold"] is False
