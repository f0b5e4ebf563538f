"""Layout in Chromium at desktop (1366 px) and phone (390 px) widths: table headers break between words only,
cluster image rows stay one strip, the feature-panel results page loads its thumbnails lazily and enlarges them."""
import pytest

from tests.study_helpers import computed_study, crowd_answers, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SIZES = [{"width": 1366, "height": 900}, {"width": 390, "height": 844}]

#: Words of header cells that a line break splits: a word whose text spans more than one line box.
BROKEN_WORDS = """() => {
  const broken = [];
  for (const th of document.querySelectorAll("th")) {
    if (!th.offsetParent) continue;
    const walker = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const re = /\\S+/g;
      let m;
      while ((m = re.exec(node.data))) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const tops = new Set(Array.from(range.getClientRects()).map(r => Math.round(r.top)));
        if (tops.size > 1) broken.push(m[0]);
      }
    }
  }
  return broken;
}"""


@pytest.fixture
def page(page):
    page.set_default_timeout(60_000)  # a loaded 2-core machine serves the first page slowly
    return page


def test_table_headers_break_between_words_only(live_server, page, make_study, make_worker, researcher):
    study = make_study(images=["astronaut", "chelsea", "coffee"], workers_per_task=2)
    crowd_answers(study, make_worker, n=2)
    sign_in(page, live_server.url, researcher.username)
    for size in SIZES:
        page.set_viewport_size(size)
        page.goto(f"{live_server.url}/studies/{study.pk}/")
        assert page.locator("th").count() > 10
        assert page.evaluate(BROKEN_WORDS) == [], size


def test_feature_panel_results_thumbnails_are_lazy_and_enlarge(live_server, page, researcher, make_worker,
                                                             django_capture_on_commit_callbacks):
    from annotation import services
    from tests.conftest import TINY_BENCHMARK, TINY_TRAINING

    study = computed_study(researcher, "feature_panel", "panels", {
        "benchmark": TINY_BENCHMARK, "training": TINY_TRAINING, "k_features": 1, "k_images": 3, "pool": 10,
        "attack_steps": 2}, django_capture_on_commit_callbacks)
    crowd_answers(study, make_worker, n=3)
    with django_capture_on_commit_callbacks(execute=True):
        services.study_close(study=study)
        services.study_aggregate(study=study)
    sign_in(page, live_server.url, researcher.username)
    page.set_viewport_size(SIZES[1])
    page.goto(f"{live_server.url}/studies/{study.pk}/results/")
    thumbs = page.locator(".fp-item .thumbs img")
    assert thumbs.count() >= 4 * 9
    assert page.evaluate("() => Array.from(document.querySelectorAll('.fp-item img'))"
                         ".every(i => i.loading === 'lazy' && i.closest('a.zoom') && i.closest('a.zoom').href === i.src)")
    with page.context.expect_page() as opened:
        thumbs.first.click()
    full = opened.value
    full.wait_for_load_state()
    assert full.url == thumbs.first.evaluate("i => i.src")
    assert full.evaluate("() => document.images.length === 1 && document.images[0].naturalWidth > 0")


def test_cluster_image_rows_stay_one_strip(page):
    """The cluster-review task page's image strip: every example in one row, at desktop and phone width."""
    from django.template.loader import render_to_string

    from annotation.task_kinds import get_task_kind

    examples = [{"image": f"{i:064x}.png", "heatmap": f"{i + 100:064x}.png"} for i in range(8)]
    payload = {"class_name": "Ankle boot", "cluster": 3, "size": 40, "examples": examples, "label": 9}
    task = type("T", (), {"payload": payload})()
    html = render_to_string(get_task_kind("cluster_review").template, {
        "task": task, "fields": [], "errors": {}, "values": {}, "field_labels": {}})
    page.set_content(f"<!doctype html><html><head><meta name='viewport' content='width=device-width'>"
                     f"{_base_style()}</head><body><main><div class='card'>{html}</div></main></body></html>")
    for size in SIZES:
        page.set_viewport_size(size)
        tops = page.evaluate("() => Array.from(document.querySelectorAll('.image-strip')).map("
                             "row => new Set(Array.from(row.querySelectorAll('img')).map(i => Math.round("
                             "i.getBoundingClientRect().top))).size)")
        assert tops == [1, 1], size


def _base_style() -> str:
    from django.conf import settings

    text = (settings.BASE_DIR / "templates" / "base.html").read_text()
    return text[text.index("<style>"):text.index("</style>") + len("</style>")]
