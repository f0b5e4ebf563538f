"""The misclassification-agreement study (Stock & Cisse §3.1) on the tiny benchmark: evidence job, the three
variants answered by a simulated crowd, rectified error, Table 2, both top-5 protocols, the results
page, the cross-condition exclusion in the assignment logic, and the top-5 page in a real browser."""
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotation import selectors, services
from annotation.models import Assignment, Study, Task
from annotation.task_kinds import get_task_kind
from annotation.tokens import assignment_token
from tests.conftest import TINY_BENCHMARK, TINY_TRAINING
from tests.study_helpers import aggregate, computed_study, crowd_answers, read_csv, sign_in

TINY = {"benchmark": TINY_BENCHMARK, "training": TINY_TRAINING, "max_images": 6, "lime_samples": 40,
        "fgsm_step": 0.01}


def make_study(researcher, capture, name, live=True, workers_per_task=5, **settings):
    return computed_study(researcher, "misclassification", name, {**TINY, **settings}, capture,
                          workers_per_task=workers_per_task, live=live)


def results_page(study) -> str:
    client = Client()
    client.force_login(study.owner)
    reply = client.get(reverse("study_results", args=[study.pk]))
    assert reply.status_code == 200
    return reply.content.decode()


# -- the exclusion lives in the assignment logic ----------------------------------------------

def test_a_worker_never_gets_a_second_condition_of_the_same_image(researcher, make_worker):
    study = services.study_create(owner=researcher, name="excl", kind="misclassification", workers_per_task=2)
    other = services.study_create(owner=researcher, name="other", kind="misclassification", workers_per_task=2)
    for s in (study, other):
        for image in (1, 2):
            for condition in ("clean", "whole", "explanation"):
                Task.objects.create(study=s, key=f"adv-{condition}-{image}", wanted=2,
                                    payload={"exclusion_group": f"image-{image}", "classes": [{"rank": 1}]})
        Task.objects.create(study=s, key="ungrouped", wanted=2, payload={"classes": [{"rank": 1}]})
    Study.objects.filter(pk__in=[study.pk, other.pk]).update(state=Study.State.LIVE)

    worker = make_worker("once")
    got = []
    while (a := services.assignment_claim_next(worker=worker, study=study)) is not None:
        got.append(a.task)
        services.assignment_return(assignment_id=a.pk, worker=worker, token=assignment_token(a))
    # one condition per image (even after returning it), plus the task without a group
    assert sorted(t.payload.get("exclusion_group", "-") for t in got) == ["-", "image-1", "image-2"]
    # the same group name in another study does not exclude anything there
    got_other = []
    while (a := services.assignment_claim_next(worker=worker, study=other)) is not None:
        got_other.append(a.task)
        services.assignment_return(assignment_id=a.pk, worker=worker, token=assignment_token(a))
    assert len(got_other) == 3

    # six workers fill every slot of the 6 grouped tasks, none of them seeing two conditions of one image
    for i in range(6):
        w = make_worker(f"w{i}")
        while (a := services.assignment_claim_next(worker=w, study=study)) is not None:
            services.assignment_submit(assignment_id=a.pk, worker=w, token=assignment_token(a),
                                       payload={"relevant": "yes"})
    seen = {}
    for a in Assignment.objects.filter(task__study=study, state="submitted").select_related("task"):
        group = a.task.payload.get("exclusion_group")
        if group:
            assert (a.worker_id, group) not in seen, "a worker got two conditions of one image"
            seen[(a.worker_id, group)] = a.task.key
    assert all(t.filled == t.wanted for t in study.tasks.all())


def test_a_crowd_site_worker_cannot_open_a_second_condition_hit(researcher):
    from annotation.errors import Conflict

    study = services.study_create(owner=researcher, name="excl-mturk", kind="misclassification",
                                  workers_per_task=2, backend="mturk")
    clean, whole = (Task.objects.create(study=study, key=f"adv-{c}-1", wanted=2,
                                        payload={"exclusion_group": "image-1", "classes": [{"rank": 1}]})
                    for c in ("clean", "whole"))
    Study.objects.filter(pk=study.pk).update(state=Study.State.LIVE)
    study.refresh_from_db()
    worker = services.external_worker(backend="mturk", external_id="W1")
    Assignment.objects.create(task=clean, worker=worker, external_id="A1", expires_at=timezone.now())
    with pytest.raises(Conflict, match="already answered"):
        services.mturk_entry_check(task=clean, assignment_id="A1", worker_id="W1")
    with pytest.raises(Conflict, match="another version"):
        services.mturk_entry_check(task=whole, assignment_id="A2", worker_id="W1")
    services.mturk_entry_check(task=whole, assignment_id="A3", worker_id="W3")  # another worker may


# -- the three variants end to end --------------------------------------------------------------

@pytest.mark.slow
def test_top1_study_rectifies_images_whose_predicted_class_is_present(researcher, make_worker,
                                                                      django_capture_on_commit_callbacks):
    study = make_study(researcher, django_capture_on_commit_callbacks, "top1", models=["standard", "robust"])
    tasks = list(study.tasks.all())
    assert {t.payload["model"] for t in tasks} == {"standard", "robust"}
    assert len(tasks) == 12  # 6 misclassified images per model
    for t in tasks:
        p = t.payload
        assert len(p["classes"]) == 1 and p["classes"][0]["cls"] != p["true"]  # really a mistake
        assert len(p["classes"][0]["examples"]) == 3 and p["classes"][0]["class_name"]
        assert "planted" not in p["classes"][0]["class_description"]
    # the planted cue of the predicted class makes the class really present: truth "yes"
    assert any(t.truth["relevant"] == "yes" for t in tasks) and any(t.truth["relevant"] == "no" for t in tasks)

    # a worker's page over HTTP: image, class, 3 examples, and a yes/no answer
    worker = make_worker("viewer")
    client = Client()
    client.force_login(worker.user)
    a = client.post(reverse("next_task"), HTTP_ACCEPT="application/json").json()["assignment"]
    page = client.get(reverse("assignment_page", args=[a])).content.decode()
    task = Assignment.objects.get(pk=a).task
    assert task.payload["classes"][0]["class_name"] in page and 'name="relevant" value="yes"' in page
    reply = client.post(reverse("assignment_page", args=[a]), {"token": assignment_token(Assignment.objects.get(pk=a)),
                                                              "relevant": "maybe"}, HTTP_ACCEPT="application/json")
    assert reply.status_code == 400 and "relevant" in reply.json()["errors"]
    client.post(reverse("assignment_return", args=[a]), {"token": assignment_token(Assignment.objects.get(pk=a))})

    assert crowd_answers(study, make_worker, accuracy=1.0) == 60
    files = aggregate(study, django_capture_on_commit_callbacks)
    assert {"images.csv", "rectified_error.csv", "yes_histogram.csv", "yes_histogram.png"} <= set(files)
    for r in study.results.select_related("task"):  # accurate workers: rectified exactly when the class is present
        assert r.label == ("rectified" if r.task.truth["relevant"] == "yes" else "not_rectified")
    table = {r["model"]: r for r in read_csv(files["rectified_error.csv"])}
    for model, row in table.items():
        rectified = sum(r.label == "rectified" for r in study.results.select_related("task")
                        if r.task.payload["model"] == model)
        error = int(row["errors"]) / int(row["images"])
        assert float(row["error_percent"]) == round(100 * error, 2)
        assert float(row["rectified_error_percent"]) == round(100 * error * (1 - rectified / 6), 2)
    page = results_page(study)
    assert "Table 1" in page and "yes_histogram.png" in page
    for row in table.values():
        assert row["rectified_error_percent"] in page
    images = read_csv(files["images.csv"])
    assert len(images) == 12 and {"image", "true", "predicted", "yes_count", "rectified"} <= set(images[0])
    assert files["yes_histogram.png"][:4] == b"\x89PNG"


@pytest.mark.slow
def test_top5_study_asks_one_question_per_class(researcher, make_worker, django_capture_on_commit_callbacks):
    # 4 classes in the tiny benchmark: the top-k variant shows k = 3 classes (k <= classes - 1)
    study = make_study(researcher, django_capture_on_commit_callbacks, "top5", variant="top5", models=["standard"],
                       workers_per_task=3, threshold=2)
    tasks = list(study.tasks.all())
    assert tasks, "no top-k mistakes"
    for t in tasks:
        classes = t.payload["classes"]
        assert [c["rank"] for c in classes] == [1, 2, 3] and t.payload["true"] not in [c["cls"] for c in classes]
        fields = get_task_kind("misclassification").answer_fields(selectors.study_conf(study=study))
        assert [f.name for f in fields] == ["class_1", "class_2", "class_3"]
    crowd_answers(study, make_worker, n=3, accuracy=1.0)
    answer = study.tasks.first().answers.first()
    assert set(answer.payload) == {"class_1", "class_2", "class_3", "relevant"}  # the label is derived on submit
    files = aggregate(study, django_capture_on_commit_callbacks)
    for r in study.results.select_related("task"):
        assert r.label == get_task_kind("misclassification").expected_label(r.task)
    assert read_csv(files["rectified_error.csv"])[0]["variant"] == "top5"
    row = read_csv(files["rectified_topk_table.csv"])[0]
    assert row["protocol"] == "topk_mistakes" and int(row["judged"]) == len(tasks)
    assert int(row["mistakes_sampled_from"]) == tasks[0].payload["n_topk_errors"] == tasks[0].payload["n_errors"]
    images = read_csv(files["images.csv"])
    assert {r["protocol"] for r in images} == {"topk_mistakes"} and {r["truth_in_topk"] for r in images} == {"False"}


@pytest.mark.slow
def test_top5_protocol_top1_mistakes_shows_the_topk_of_every_top1_mistake(researcher, make_worker,
                                                                          django_capture_on_commit_callbacks):
    study = make_study(researcher, django_capture_on_commit_callbacks, "top5-t1", variant="top5",
                       models=["standard"], workers_per_task=3, threshold=2, top5_protocol="top1_mistakes",
                       max_images=30)
    tasks = list(study.tasks.all())
    p = tasks[0].payload
    assert p["protocol"] == "top1_mistakes" and len(tasks) == min(p["n_errors"], 30)
    assert p["n_errors"] >= p["n_topk_errors"]
    assert all(t.payload["classes"][0]["cls"] != t.payload["true"] for t in tasks)  # top-1 mistakes
    inside = [t for t in tasks if t.payload["truth_in_topk"]]
    assert inside, "no top-1 mistake with its truth among the top k"
    for t in inside:
        assert t.payload["true"] in [c["cls"] for c in t.payload["classes"]]
    crowd_answers(study, make_worker, n=3, accuracy=1.0)
    files = aggregate(study, django_capture_on_commit_callbacks)
    row = read_csv(files["rectified_topk_table.csv"])[0]
    assert row["protocol"] == "top1_mistakes" and int(row["judged"]) == len(tasks)
    wrong = sum(not t.payload["truth_in_topk"] and t.result.label != "rectified" for t in tasks)
    rectified = round(100 * p["n_errors"] / p["n_images"] * wrong / len(tasks), 2)
    assert float(row["rectified_topk_error_percent"]) == rectified
    assert float(row["topk_error_percent"]) == round(100 * p["n_topk_errors"] / p["n_images"], 2)


@pytest.mark.slow
def test_adversarial_study_whole_explanation_and_clean(researcher, make_worker, django_capture_on_commit_callbacks):
    study = make_study(researcher, django_capture_on_commit_callbacks, "adv", variant="adversarial",
                       models=["standard"], max_images=3, workers_per_task=2, threshold=2)
    tasks = list(study.tasks.all())
    groups = {}
    for t in tasks:
        groups.setdefault(t.payload["exclusion_group"], {})[t.payload["condition"]] = t
    assert groups and all(set(g) == {"clean", "whole", "explanation"} for g in groups.values())
    for g in groups.values():
        clean, whole = g["clean"].payload, g["whole"].payload
        assert clean["classes"][0]["cls"] == clean["true"] != whole["classes"][0]["cls"]
        assert 1 <= whole["steps"] <= 10 and g["explanation"].payload["image"] != whole["image"]
        assert g["clean"].truth["relevant"] == "yes"
    # 2 answers per condition and 3 conditions: 6 workers needed, each sees one condition per image
    assert crowd_answers(study, make_worker, n=6, accuracy=1.0) == 2 * len(tasks)
    files = aggregate(study, django_capture_on_commit_callbacks)
    assert "relevance_shares.csv" not in files
    table = {r["condition"]: r for r in read_csv(files["adversarial_table.csv"])}  # Table 2
    assert set(table) == {"clean", "whole", "explanation"}
    assert float(table["clean"]["rectified_share_percent"]) == 100.0 and not table["clean"]["top1_error_percent"]
    for condition in ("whole", "explanation"):
        row = table[condition]
        rectified = sum(r.label == "rectified" for r in study.results.select_related("task")
                        if r.task.payload["condition"] == condition)
        error = float(row["top1_error_percent"])
        assert error > 0 and int(row["judged"]) == len(groups)
        assert float(row["rectified_error_percent"]) == pytest.approx(error * (1 - rectified / len(groups)), abs=0.02)
        assert float(row["rectified_error_ci_low_percent"]) <= float(row["rectified_error_percent"]) \
            <= float(row["rectified_error_ci_high_percent"])
    page = results_page(study)
    assert "Table 2" in page and table["whole"]["top1_error_percent"] in page


# -- the top-5 page in a real browser --------------------------------------------------------

@pytest.mark.slow
@pytest.mark.browser
def test_worker_answers_a_top5_task_in_the_browser(live_server, page, make_worker, researcher,
                                                   django_capture_on_commit_callbacks):
    study = make_study(researcher, django_capture_on_commit_callbacks, "top5-browser", variant="top5",
                       models=["standard"], max_images=1, workers_per_task=1)
    task = study.tasks.get()
    make_worker("neo")
    sign_in(page, live_server.url, "neo")
    page.click("#next-task")
    page.wait_for_selector("#task-image")
    sections = page.locator("section.class-question")
    assert sections.count() == 3
    for i, c in enumerate(task.payload["classes"]):
        assert c["class_name"] in sections.nth(i).inner_text()
        assert sections.nth(i).locator("img").count() == 3
    page.check("input[name=class_1][value=yes]")
    page.check("input[name=class_3][value=no]")
    page.click("#submit-answer")  # class 2 left out: the browser (required radios) or the server refuses
    assert not task.answers.exists()
    page.check("input[name=class_2][value=yes]")
    page.click("#submit-answer")
    page.wait_for_selector("text=Answer saved")
    answer = task.answers.get()
    assert answer.payload == {"class_1": "yes", "class_2": "yes", "class_3": "no", "relevant": "1+2"}


@pytest.mark.slow
def test_lime_segment_size_setting_reaches_lime(researcher, monkeypatch, django_capture_on_commit_callbacks):
    import analysis.misclassification.evidence as evidence
    from annotation.task_kinds.misclassification import MisclassificationSettingsForm

    defaults = get_task_kind("misclassification").default_settings()
    assert defaults["lime_segment_size"] == 224 and defaults["top5_protocol"] == "topk_mistakes"
    form = MisclassificationSettingsForm(data={**{k: v for k, v in defaults.items() if k not in ("models", "benchmark",
                                                                                             "training")},
                                               "lime_segment_size": "", "models": ["standard"]})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["lime_segment_size"] is None  # empty: segment at the image's own size
    seen = {}

    def stop(*args, lime=None, **kwargs):
        seen.update(lime)
        raise RuntimeError("stopped after the settings were read")

    monkeypatch.setattr(evidence, "adversarial_with_explanations", stop)
    study = services.study_create(owner=researcher, name="lime", kind="misclassification",
                                  settings={**TINY, "variant": "adversarial", "lime_segment_size": 64})
    with pytest.raises(RuntimeError, match="stopped"):
        with django_capture_on_commit_callbacks(execute=True):
            services.study_start_computing(study=study)
    assert seen == {"num_samples": 40, "segment_size": 64}
