"""Issue 28, item 3 in Chromium: a researcher uploads a checkpoint and a zipped image folder from the registry page
(with the upload's progress shown), then runs a feature-panel study on them to its results."""
from __future__ import annotations

import re
import zipfile

import pytest
from django.urls import reverse

from annotation import services
from annotation.models import RegisteredDataset, RegisteredModel, Study
from tests.own_data import image_folder, resnet18_checkpoints
from tests.study_helpers import aggregate, crowd_answers, sign_in

#: Records the upload status line's texts (the page replaces <main> when the answer comes).
WATCH_PROGRESS = """() => {
  window.uploadTexts = [];
  new MutationObserver(() => {
    document.querySelectorAll('.upload-label').forEach(l => {
      const last = window.uploadTexts[window.uploadTexts.length - 1];
      if (l.textContent && last !== l.textContent) { window.uploadTexts.push(l.textContent); }
    });
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


@pytest.fixture
def own_files(tmp_path):
    data = tmp_path / "fish"
    image_folder(data / "train", per_class=4, side=48)
    image_folder(data / "val", per_class=2, side=48, seed=1)
    archive = tmp_path / "fish.zip"
    with zipfile.ZipFile(archive, "w") as packed:
        for item in sorted(data.rglob("*.JPEG")):
            packed.write(item, f"fish/{item.relative_to(data).as_posix()}")
    return {"archive": archive, **resnet18_checkpoints(tmp_path / "ckpt")}


def _upload(page, what: str, fields: dict[str, str], file_field: str, path) -> list[str]:
    page.evaluate(WATCH_PROGRESS)
    page.evaluate("() => document.querySelectorAll('.messages').forEach(m => m.remove())")  # the last upload's
    for name, value in fields.items():
        selector = f"#id_{what}-{name}"
        if page.eval_on_selector(selector, "e => e.tagName") == "SELECT":
            page.select_option(selector, value)
        else:
            page.fill(selector, value)
    page.set_input_files(f"#id_{what}-{file_field}", str(path))
    page.click(f"#register-{what} button[type=submit]")
    page.wait_for_selector(".messages", timeout=60_000)  # the answer replaced <main>: "… registered."
    return page.evaluate("() => window.uploadTexts")


@pytest.mark.slow
@pytest.mark.browser
def test_upload_a_checkpoint_and_a_zipped_folder_then_run_a_feature_panel_study(
        live_server, page, researcher, own_files, make_worker, django_capture_on_commit_callbacks):
    page.set_default_timeout(60_000)  # two shared CPU cores: the first page of a live server can take a while
    sign_in(page, live_server.url, researcher.username)
    page.goto(f"{live_server.url}{reverse('registry')}")
    texts = _upload(page, "model", {"name": "uploaded", "architecture": "resnet18", "format": "robustness",
                                    "input_size": "64"}, "checkpoint_file", own_files["robust"])
    # The 45 MB checkpoint sends over many tasks: its progress events move the percentage.
    assert any(re.match(r"Uploading: [1-9]\d*% of ", t) for t in texts), texts
    assert any(t.startswith("Uploaded; checking") for t in texts)
    assert "model 'uploaded' registered." in page.inner_text(".messages")
    assert page.url.endswith(reverse("registry"))
    texts = _upload(page, "dataset", {"name": "fishzip"}, "archive", own_files["archive"])
    assert any(t.startswith("Uploading: ") for t in texts)
    assert "dataset 'fishzip' registered." in page.inner_text(".messages")
    assert "fishzip" in page.inner_text("table >> nth=1") and "uploaded" in page.inner_text("table >> nth=0")
    model, dataset = RegisteredModel.objects.get(name="uploaded"), RegisteredDataset.objects.get(name="fishzip")
    assert (model.num_classes, dataset.n_images, sum(dataset.val_counts.values())) == (4, 16, 8)

    # A bad archive is refused beside the field, in the page, and the form stays.
    bad = own_files["archive"].with_name("bad.zip")
    with zipfile.ZipFile(bad, "w") as packed:
        packed.writestr("n01/../../evil.png", b"x")
    page.fill("#id_dataset-name", "bad")
    page.set_input_files("#id_dataset-archive", str(bad))
    page.click("#register-dataset button[type=submit]")
    page.wait_for_selector("#register-dataset .errorlist")
    assert "path traversal" in page.inner_text("#register-dataset .errorlist")

    page.goto(f"{live_server.url}/studies/new/?kind=feature_panel")
    page.fill("#id_name", "uploaded panels")
    page.select_option("#id_s-dataset", "fishzip")
    page.select_option("#id_s-model", "uploaded")
    for box in page.query_selector_all("[name='s-eval_models']"):
        box.set_checked(box.get_attribute("value") == "uploaded")
    for name, value in {"classes": "2", "k_features": "1", "k_images": "3", "pool": "4", "attack_steps": "0"}.items():
        page.fill(f"#id_s-{name}", value)
    page.fill("#id_workers_per_task", "3")
    with page.expect_navigation():
        page.click("#create-study")
    study = Study.objects.get(name="uploaded panels")
    # The evidence job runs here (eager Celery; the dashboard's Compute button queues the same job).
    with django_capture_on_commit_callbacks(execute=True):
        services.study_start_computing(study=study)
    study.refresh_from_db()
    assert study.state == "ready", study.error
    page.reload()
    assert page.inner_text("#study-state") == "ready"
    services.study_launch(study=study)
    assert crowd_answers(study, make_worker, n=3) > 0
    aggregate(study, django_capture_on_commit_callbacks)
    page.goto(f"{live_server.url}{reverse('study_results', args=[study.pk])}")
    assert page.is_visible("#feature-grid") and page.is_visible("#core-spurious")
    assert "No results yet" not in page.inner_text("main")
