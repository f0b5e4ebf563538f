"""A researcher's own checkpoint and image folder: registration (and its refusals) and every model-based kind on
them."""
from __future__ import annotations

import re
import shutil

import pytest
import torch
import torchvision
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotation import services
from annotation.errors import ApplicationError
from annotation.models import RegisteredDataset, RegisteredModel, Study
from annotation.task_kinds import get_task_kind
from tests.own_data import CLASSES, image_folder, metadata_csv, resnet18_checkpoints
from tests.salient_checks import check_matched, check_reasons, check_reference_layout, check_statistics
from tests.study_helpers import aggregate, crowd_answers, read_csv, study_from_form

SIZE = 64  # the registered models' input size: small, so the studies run fast on a CPU


@pytest.fixture(scope="module")
def own_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    folder = image_folder(root / "train")
    (folder / "n01" / "notes.txt").write_text("not an image")
    (folder / "n02" / "broken.JPEG").write_bytes(b"\xff\xd8 not really a jpeg")
    return {"root": folder, "val": image_folder(root / "val", per_class=4, seed=1),
            "meta": metadata_csv(root / "classes.csv"), **resnet18_checkpoints(root / "ckpt"), "dir": root}


@pytest.fixture
def registered(db, researcher, own_files):
    model = services.registry.model_register(owner=researcher, name="mine", architecture="resnet18",
                                             checkpoint=str(own_files["plain"]), input_size=SIZE)
    robust = services.registry.model_register(owner=researcher, name="mine-robust", architecture="resnet18",
                                              checkpoint=str(own_files["robust"]), format="robustness",
                                              input_size=SIZE)
    dataset = services.registry.dataset_register(owner=researcher, name="fish", root=str(own_files["root"]),
                                                 val_root=str(own_files["val"]), class_metadata=str(own_files["meta"]))
    return model, robust, dataset


def test_registration_reads_the_checkpoints_and_scans_the_folder(registered):
    model, robust, dataset = registered
    assert (model.num_classes, model.feature_dim, model.conv_map) == (4, 512, [512, 2, 2])
    assert robust.mean == pytest.approx([0.5] * 3) and robust.std == pytest.approx([0.25] * 3)
    assert model.mean == pytest.approx([0.485, 0.456, 0.406])  # ImageNet's when the checkpoint records none
    assert [c["name"] for c in dataset.classes] == [c[1] for c in CLASSES]
    assert dataset.classes[0]["synonyms"] == ["tench",
                                              "Tinca tinca"] and dataset.classes[2]["supercategory"] == "container"
    assert dataset.counts == {"n01": 12, "n02": 12, "n03": 12, "n04": 12}
    assert dataset.n_unreadable == 2 and sorted(dataset.unreadable) == ["n01/notes.txt", "n02/broken.JPEG"]


@pytest.mark.parametrize("case", ["wrong_shape", "resnet50_as_resnet18", "unknown_arch", "unreadable", "format"])
def test_model_registration_refusals_name_the_problem_and_store_nothing(db, researcher, own_files, tmp_path, case):
    path, arch, fmt = own_files["plain"], "resnet18", "auto"
    if case == "wrong_shape":
        state = torch.load(own_files["plain"])
        state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 5, 5)
        torch.save(state, path := tmp_path / "bad.pt")
        expected = "layer1.0.conv1.weight"
    elif case == "resnet50_as_resnet18":
        torch.save(torchvision.models.resnet50(num_classes=4).state_dict(), path := tmp_path / "r50.pt")
        expected = "does not load as resnet18"
    elif case == "unknown_arch":
        arch, expected = "resnet9000", "resnet9000"
    elif case == "unreadable":
        (path := tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
        expected = "cannot read checkpoint"
    else:
        fmt, expected = "robustness", "declared 'robustness'"
    with pytest.raises(ApplicationError, match=expected):
        services.registry.model_register(owner=researcher, name="x", architecture=arch, checkpoint=str(path),
                                         format=fmt, input_size=SIZE)
    assert not RegisteredModel.objects.filter(name="x").exists()


@pytest.mark.parametrize("case", ["empty_class", "unknown_column", "duplicate_index", "missing_folder"])
def test_dataset_registration_refusals(db, researcher, own_files, tmp_path, case):
    root = tmp_path / "data"
    shutil.copytree(own_files["root"], root)
    meta = tmp_path / "meta.csv"
    shutil.copy(own_files["meta"], meta)
    text = meta.read_text()
    if case == "empty_class":
        shutil.rmtree(root / "n03"), (root / "n03").mkdir()
        expected = "class 2 .mug. has no readable image"
    elif case == "unknown_column":
        meta.write_text(text.replace("definition", "colour"))
        expected = "unknown column.*colour"
    elif case == "duplicate_index":
        meta.write_text(re.sub(r"\n1,(\"?)n02", r"\n0,\1n02", text))  # the writer may quote the folder
        expected = "class index 0 is given twice"
    else:
        shutil.rmtree(root / "n04")
        expected = "no folder 'n04'"
    with pytest.raises(ApplicationError, match=expected):
        services.registry.dataset_register(owner=researcher, name="d", root=str(root), class_metadata=str(meta))
    assert not RegisteredDataset.objects.filter(name="d").exists()


def test_registry_roots_refuse_paths_outside_them_symlinks_included(db, researcher, own_files, tmp_path, settings):
    """With ``SALIENT_REGISTRY_ROOTS`` set, only files under those folders register (a symlink out is refused)."""
    settings.SALIENT_REGISTRY_ROOTS = [str(own_files["dir"])]
    escape = own_files["dir"] / "escape"
    escape.symlink_to(tmp_path, target_is_directory=True)
    shutil.copy(own_files["plain"], tmp_path / "outside.pt")
    try:
        for checkpoint in (tmp_path / "outside.pt", escape / "outside.pt"):
            with pytest.raises(ApplicationError, match="outside the folders .*SALIENT_REGISTRY_ROOTS") as refused:
                services.registry.model_register(owner=researcher, name="out", architecture="resnet18",
                                                 checkpoint=str(checkpoint), input_size=SIZE)
            assert refused.value.field == "checkpoint"
        with pytest.raises(ApplicationError, match="outside the folders") as refused:
            services.registry.dataset_register(owner=researcher, name="out", root=str(own_files["root"]),
                                               class_metadata="/etc/passwd")
        assert refused.value.field == "class_metadata"
        assert not RegisteredModel.objects.filter(name="out").exists()
        assert not RegisteredDataset.objects.filter(name="out").exists()
        services.registry.model_register(owner=researcher, name="in", architecture="resnet18",
                                         checkpoint=str(own_files["plain"]), input_size=SIZE)
    finally:
        escape.unlink()


def test_the_commands_register_and_refuse_with_a_non_zero_exit(db, own_files, capsys):
    call_command("register_model", "cli-model", "--arch", "resnet18", "--checkpoint", str(own_files["robust"]),
                 "--input-size", str(SIZE))
    call_command("register_dataset", "cli-data", "--root", str(own_files["root"]), "--class-metadata",
                 str(own_files["meta"]))
    out = capsys.readouterr().out
    assert "4 classes, features 512" in out and "48 images" in out and "2 unreadable" in out
    with pytest.raises(CommandError, match="does not load as resnet50"):
        call_command("register_model", "cli-bad", "--arch", "resnet50", "--checkpoint", str(own_files["plain"]))
    assert set(RegisteredModel.objects.filter(owner=None).values_list("name", flat=True)) == {"cli-model"}


def test_the_registry_page_registers_and_answers_400_on_a_bad_checkpoint(researcher_client, own_files):
    page = researcher_client.get(reverse("registry"))
    assert page.status_code == 200 and "benchmark" in page.content.decode()
    bad = researcher_client.post(reverse("registry"), {"what": "model", "model-name": "m",
                                                       "model-architecture": "vgg11",
                                                       "model-checkpoint": str(own_files["plain"]),
                                                       "model-format": "auto"})
    assert bad.status_code == 400 and "does not load as vgg11" in bad.content.decode()
    good = researcher_client.post(reverse("registry"), {"what": "dataset", "dataset-name": "fish",
                                                        "dataset-root": str(own_files["root"])})
    assert good.status_code == 302 and RegisteredDataset.objects.get(name="fish").num_classes == 4


def test_class_count_mismatch_and_missing_conv_map_are_refused_at_study_creation(registered, researcher, own_files):
    small = services.registry.model_register(owner=researcher, name="three", architecture="resnet18",
                                             checkpoint=str(_three_class(own_files)), input_size=SIZE)
    with pytest.raises(ApplicationError, match="model 'three' has 3 classes but dataset 'fish' has 4"):
        services.study_create(owner=researcher, name="s", kind="misclassification",
                              settings={"dataset": "fish", "models": ["three"]})
    RegisteredModel.objects.filter(pk=small.pk).update(conv_map=None, num_classes=4)
    with pytest.raises(ApplicationError, match="no convolutional feature map"):
        services.study_create(owner=researcher, name="s", kind="feature_panel",
                              settings={"dataset": "fish", "model": "three", "eval_models": []})
    with pytest.raises(ApplicationError, match="runs only on the built-in benchmark"):
        services.study_create(owner=researcher, name="s", kind="cluster_review",
                              settings={"dataset": "fish", "model": "standard"})
    assert not Study.objects.exists()


def _three_class(own_files):
    path = own_files["dir"] / "three.pt"
    if not path.exists():
        torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), path)
    return path


BASE = {"workers_per_task": 3, "reward_cents": 0, "assignment_minutes": 30, "backend": "internal",
        "s-dataset": "fish", "s-benchmark": "{}", "s-training": "{}"}
KINDS = {
    "feature_panel": {"s-model": "mine-robust", "s-eval_models": ["mine-robust", "mine"], "s-k_features": 2,
                      "s-k_images": 3, "s-pool": 6, "s-attack_steps": 2, "s-spurious_threshold": 2,
                      "s-reason_min_length": 5},
    "heatmap_validation": {"s-model": "mine-robust", "s-k_features": 2, "s-k_images": 3, "s-pool": 6,
                           "s-attack_steps": 0, "s-spurious_threshold": 2, "s-reason_min_length": 0},
    "misclassification": {"s-variant": "top5", "s-models": ["mine"], "s-split": "test", "s-top_k": 5,
                          "s-max_images": 6, "s-threshold": 2, "s-fgsm_step": 0.001, "s-fgsm_max_steps": 2,
                          "s-lime_samples": 20},
    "class_assignment": {"s-model": "mine", "s-n_classes": 3, "s-images_per_class": 2, "s-targets_per_class": 1,
                         "s-pool_per_class": 12, "s-attack_steps": 2, "s-attack_eps": 0.001, "s-mmd_reg": 1.0,
                         "s-min_answer_time": 0, "s-max_answer_time": 600, "s-seed": 0},
    "cluster_review": {"s-model": "mine", "s-per_class": 12, "s-size": 8, "s-metric": "euclidean", "s-max_k": 3,
                       "s-review_classes": 1, "s-examples": 3, "s-min_cluster_size": 2, "s-reason_min_length": 5},
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_model_based_kind_runs_on_the_researchers_model_and_images(
        kind, registered, researcher_client, make_worker, django_capture_on_commit_callbacks, tmp_path):
    form = {**BASE, "name": f"own-{kind}", "kind": kind, **KINDS[kind]}
    study = study_from_form(researcher_client, form, django_capture_on_commit_callbacks)
    tasks = list(study.tasks.all())
    assert tasks and all(t.truth is None or kind == "class_assignment" for t in tasks)  # no truth outside the benchmark
    services.study_launch(study=study)
    assert crowd_answers(study, make_worker, n=3 if kind != "class_assignment" else 9) > 0
    if get_task_kind(kind).has_outputs:
        files = aggregate(study, django_capture_on_commit_callbacks)
    else:
        services.study_close(study=study)
        services.study_aggregate(study=study)
    export = researcher_client.get(reverse("study_export", args=[study.pk, "labels.csv"]))
    assert export.status_code == 200 and len(read_csv(export.content)) == len(tasks)
    if kind == "feature_panel":
        assert "feature_labels.csv" in files and tasks[0].payload["class_synonyms"] is not None
        # Fig. 4, App. F, App. L and the reference layout on a registered folder (tests/salient_checks.py)
        decided = check_statistics(files)
        labels = read_csv(files["feature_labels.csv"])
        check_reasons(files, sum(int(r["n_answers"]) for r in labels))
        check_matched(files)
        assert check_reference_layout(files, tmp_path) > 0
        page = researcher_client.get(reverse("study_results", args=[study.pk])).content.decode()
        spurious = sum(r["label"] == "spurious" for r in decided)
        assert f'<span id="stat-spurious">{spurious}</span>' in page and 'id="worker-reasons"' in page
    if kind == "misclassification":
        assert tasks[0].payload["k"] == 3  # 4 classes: at most 3 shown
        # the dataset has a validation folder (without one the kind is refused): Table 1 says so
        table1 = read_csv(files["rectified_error.csv"])
        assert [r["split"] for r in table1] == ["validation folder"]


@pytest.mark.slow
@pytest.mark.browser
def test_class_metadata_shows_on_a_feature_panel_page_in_the_browser(
        live_server, page, registered, researcher, make_worker, django_capture_on_commit_callbacks):
    """A worker's feature-panel page names the class with its synonyms, supercategory and definition."""
    from tests.study_helpers import sign_in

    study = services.study_create(owner=researcher, name="meta", kind="feature_panel", workers_per_task=1, settings={
        "dataset": "fish", "model": "mine", "eval_models": [], "classes": [2], "k_features": 1, "k_images": 3,
        "pool": 6, "attack_steps": 2})
    with django_capture_on_commit_callbacks(execute=True):
        services.study_start_computing(study=study)
    study.refresh_from_db()
    services.study_launch(study=study)
    make_worker("viewer")
    sign_in(page, live_server.url, "viewer")
    page.click("#next-task")
    page.wait_for_selector(".class-meta")
    assert page.inner_text("h1") == "Class: mug"
    assert page.inner_text(".class-description") == "a cup with a handle"
    assert page.inner_text(".class-supercategory") == "container"
    assert page.inner_text(".class-synonyms") == "coffee mug"


NEEDS_VALIDATION = {"misclassification": {"models": ["mine"], "split": "test"},
                    "class_assignment": {"model": "mine"},
                    "cluster_review": {"model": "mine", "embed_split": "train+val"}}


@pytest.mark.parametrize("kind", sorted(NEEDS_VALIDATION))
def test_a_kind_that_needs_validation_images_refuses_a_dataset_without_a_validation_folder(
        registered, researcher, researcher_client, own_files, kind):
    """Without a validation folder the ``test`` split is the training images: Table 1, the class-assignment
    targets and a joint train+val embedding would silently run on them. Refused, naming the folder."""
    services.registry.dataset_register(owner=researcher, name="trainonly", root=str(own_files["root"]))
    settings = NEEDS_VALIDATION[kind]
    with pytest.raises(ApplicationError, match="dataset 'trainonly' was registered without a validation folder") as err:
        services.study_create(owner=researcher, name="s", kind=kind, settings={"dataset": "trainonly", **settings})
    assert err.value.extra == {"field": "dataset"} and str(own_files["root"]) in err.value.message
    assert not Study.objects.exists()
    form = {**BASE, "name": "f", "kind": kind, **KINDS[kind], "s-dataset": "trainonly",
            **{f"s-{k}": v for k, v in settings.items()}}
    page = researcher_client.post(reverse("study_create"), form)
    assert page.status_code == 400 and "registered without a validation folder" in page.content.decode()
    assert services.study_create(owner=researcher, name="s", kind=kind, settings={"dataset": "fish", **settings})


@pytest.mark.slow
def test_spray_on_training_images_only_says_why_no_artifact_test_or_unhans_runs(
        registered, researcher, own_files, researcher_client, django_capture_on_commit_callbacks):
    """SpRAy itself runs on training images; its artifact tests and un-Hans need held-out images: the un-Hans
    jobs are refused, and the results page and the report say the artifact tests were not made."""
    from annotation.reports.study_report import study_report_html

    services.registry.dataset_register(owner=researcher, name="trainonly", root=str(own_files["root"]))
    form = {**BASE, "name": "spray", "kind": "cluster_review", **KINDS["cluster_review"], "s-dataset": "trainonly"}
    study = study_from_form(researcher_client, form, django_capture_on_commit_callbacks)
    pages = [researcher_client.get(reverse("study_results", args=[study.pk])).content.decode(),
             study_report_html(study=study)]
    assert all('id="ranking"' in page and 'id="no-validation"' in page
               and "The artifact tests and un-Hans needs validation images" in page for page in pages)
    for job in ("unhans", "unhans_drop"):
        with pytest.raises(ApplicationError, match="registered without a validation folder"):
            services.study_start_kind_job(study=study, name=job, params={})
    with_val = services.study_create(owner=researcher, name="with-val", kind="cluster_review",
                                     settings={"dataset": "fish", "model": "mine"})
    Study.objects.filter(pk=with_val.pk).update(state=Study.State.READY)
    assert services.study_start_kind_job(study=with_val, name="unhans", params={})


@pytest.mark.slow
def test_a_feature_panel_on_own_data_shows_the_researchers_solved_examples_and_gold_panels(
        registered, researcher, researcher_client, django_capture_on_commit_callbacks):
    """Registered data has no truth, so the solved examples and the gold panels of the paper's HIT come from
    the researcher: named panels with their answers (an unknown panel is refused, naming the panels shown).
    The HIT shows no feature rank (the reference HIT has none)."""
    from tests.study_helpers import computed_study

    settings = {"dataset": "fish", "model": "mine-robust", "eval_models": [], "classes": [0, 2], "k_features": 2,
                "k_images": 3, "pool": 6, "attack_steps": 2}
    plain = computed_study(researcher, "feature_panel", "plain", settings, django_capture_on_commit_callbacks,
                           live=False)
    keys = sorted(plain.tasks.values_list("key", flat=True))
    assert len(keys) == 4 and not plain.tasks.filter(is_gold=True).exists()
    assert all(not t.payload["solved"] for t in plain.tasks.all())

    wrong = services.study_create(owner=researcher, name="wrong", kind="feature_panel",
                                  settings={**settings, "gold_answers": {"c1-f7": "background"}})
    with pytest.raises(ValueError, match=f"name panel.s. c1-f7 that this study does not show; its panels: {keys[0]}"):
        with django_capture_on_commit_callbacks(execute=True):
            services.study_start_computing(study=wrong)

    study = computed_study(researcher, "feature_panel", "chosen",
                           {**settings, "solved_examples": {keys[0]: "background"},
                            "gold_answers": {keys[1]: "main_object"}}, django_capture_on_commit_callbacks, live=False)
    gold = {t.key: t.truth for t in study.tasks.filter(is_gold=True)}
    assert gold == {f"gold-{keys[0]}": {"main": "background"}, f"gold-{keys[1]}": {"main": "main_object"}}
    assert all(t.truth is None for t in study.tasks.filter(is_gold=False))
    task = study.tasks.get(key=keys[2])
    (solved,) = task.payload["solved"]
    assert solved["answer"] == "background" and len(solved["heatmaps"]) == 3
    assert solved["class_name"] == CLASSES[int(keys[0][1:].split("-")[0])][1]
    page = researcher_client.get(reverse("task_preview", args=[task.pk])).content.decode()
    assert page.count('class="solved"') == 1 and f"Feature {task.payload['feature']}</h2>" in page
    assert "rank" not in page.lower() and "for this class" not in page


@pytest.mark.slow
def test_attribute_question_on_a_registered_folder_through_the_api(
        registered, researcher, own_files, make_worker, django_capture_on_commit_callbacks):
    """§3.4's attribute question on the researcher's images (no validation folder needed: training images only),
    through the API: the crowd's yes votes become the shares, counted per selector, role and class."""
    from tests.test_api import api_client

    services.registry.dataset_register(owner=researcher, name="trainonly", root=str(own_files["root"]))
    api = api_client(researcher)
    body = {"name": "attr", "kind": "class_assignment", "workers_per_task": 3,
            "settings": {"dataset": "trainonly", "model": "mine", "n_classes": 3, "images_per_class": 2,
                         "pool_per_class": 12, "attack_steps": 2, "attribute_question": "Is there a red square?"}}
    reply = api.post("/api/studies", {**body, "settings": {**body["settings"], "attribute_question": "1 2"}},
                     content_type="application/json")
    assert reply.status_code == 400 and reply.json()["field"] == "settings.attribute_question", reply.content
    reply = api.post("/api/studies", body, content_type="application/json")
    assert reply.status_code == 201, reply.content
    sid = reply.json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post(f"/api/studies/{sid}/compute").json()["state"] == "computing"
    study = Study.objects.get(pk=sid)
    assert study.state == "ready", study.error
    tasks = list(study.tasks.all())
    assert tasks and all(t.truth is None and t.payload["attribute"] == "Is there a red square?" for t in tasks)
    assert api.post(f"/api/studies/{sid}/launch").json()["state"] == "live"
    crowd_answers(study, make_worker, n=3)
    files = aggregate(study, django_capture_on_commit_callbacks)
    rows = read_csv(files["attribute_shares.csv"])
    assert "planted_cue_percent" not in rows[0]  # no known cue on the researcher's images
    exported = {int(r["task"]): r["label"] for r in read_csv(
        api.get(f"/api/studies/{sid}/exports/labels.csv").content)}
    for r in rows:
        picked = [t for t in tasks if int(t.payload["cls"]) == int(r["class"])
                  and [r["selector"], r["role"]] in t.payload["roles"]]
        votes = [exported[t.pk] for t in picked]
        assert int(r["images"]) == len(picked)
        assert int(r["yes"]) == votes.count("yes") and int(r["decided"]) == votes.count("yes") + votes.count("no")
    assert sum(int(r["images"]) for r in rows) >= len(tasks)  # every picked image is counted in its rows


@pytest.mark.slow
def test_recovered_samples_on_two_class_folders_through_the_api(
        registered, researcher, own_files, django_capture_on_commit_callbacks):
    """Two class folders of a registered dataset as the reconstruction's two sides, in grey at a size below the
    images' own; refused with the folder named when it holds fewer images than per_side, and when the size is
    above the data's own; Table 2's test accuracy is measured on the validation folder's two classes."""
    import json

    from analysis.reconstruction.data import clean_split
    from analysis.reconstruction.sources import own_size
    from annotation.task_kinds.benchmark import folder_dataset
    from tests.test_api import api_client

    api = api_client(researcher)
    settings = {"source": "dataset", "dataset": "fish", "classes": "0,2", "variant": "contrast", "per_side": 6,
                "size": 10, "hidden": 32, "steps": 30, "review_k": 1}
    body = {"name": "folder recon", "kind": "reconstruction_review", "workers_per_task": 1, "settings": settings}
    reply = api.post("/api/studies", {**body, "settings": {**settings, "per_side": 13}},
                     content_type="application/json")
    assert reply.status_code == 400 and reply.json()["field"] == "settings.per_side", reply.content
    assert "class folder 'n01" in reply.json()["error"] and "fewer than per_side = 13" in reply.json()["error"]
    reply = api.post("/api/studies", {**body, "settings": {**settings, "classes": "0,9"}},
                     content_type="application/json")
    assert reply.status_code == 400 and reply.json()["field"] == "settings.classes"
    assert not Study.objects.exists()

    sid = api.post("/api/studies", body, content_type="application/json").json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        api.post(f"/api/studies/{sid}/compute")
    study = Study.objects.get(pk=sid)
    assert study.state == "ready", study.error
    outputs = {o.name: o for o in study.outputs.all()}
    from annotation.artifacts import artifact_read

    table2 = read_csv(artifact_read(outputs["table2.csv"].artifact))
    summary = json.loads(artifact_read(outputs["reconstruction_summary.json"].artifact))
    assert [r["level"] for r in table2] == ["base", "contrast"] and summary["dataset"].startswith("fish (")
    entry = registered[2]
    data = folder_dataset({"root": entry.root, "val_root": entry.val_root, "classes": entry.classes},
                          image_size=10, mode="resize_crop")
    _, labels = clean_split(data.split("test").images, data.split("test").labels, (0, 2), size=10)
    assert all(int(r["test_size"]) == len(labels) == 8 for r in table2)  # 4 validation images per class
    assert all(0 <= float(r["test_accuracy"]) <= 1 and 0 < float(r["mean_best_k_ssim"]) <= 1 for r in table2)
    assert study.tasks.count() == 2 * 2 and {t.payload["class_name"] for t in study.tasks.all()} == {
        entry.classes[0]["name"], entry.classes[2]["name"]}

    assert own_size(data, (0, 2)) == 96  # the folder's images are 96 px on their short side
    big = api.post("/api/studies", {**body, "name": "too big", "settings": {**settings, "size": 97}},
                   content_type="application/json").json()["id"]
    with pytest.raises(ValueError, match=r"size 97 is larger than the data's own images \(96 px"):
        with django_capture_on_commit_callbacks(execute=True):
            api.post(f"/api/studies/{big}/compute")
    assert Study.objects.get(pk=big).state != "ready" and not Study.objects.get(pk=big).tasks.exists()
