"""Layout in Chromium at desktop (1366 px) and phone (390 px) widths: table headers break between words only,
cluster image rows stay one strip, the feature-panel results page loads its thumbnails lazily and enlarges them."""
import pytest

from tests.study_helpers import crowd_answers, sign_in
from tests.browser_warmup import page  # noqa: F401 - the warmed-up page of these tests

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




def test_table_headers_break_between_words_only(live_server, page, make_study, make_worker, researcher):
    study = make_study(images=["astronaut", "chelsea", "coffee"], workers_per_task=2)
    crowd_answers(study, make_worker, n=2)
    sign_in(page, live_server.url, researcher.username)
    for size in SIZES:
        page.set_viewport_size(size)
        page.goto(f"{live_server.url}/studies/{study.pk}/")
        assert page.locator("th").count() > 10
        assert page.evaluate(BROKEN_WORDS) == [], size


def test_feature_panel_results_thumbnails_are_lazy_and_enlarge(page):
    """The results page's panel grid (84 panels x 9 images, as a large study has): every thumbnail loads lazily
    and is a link to its full-size image."""
    from django.template.loader import render_to_string

    from annotation.reports.study_report import PageImages

    def names(panel: int, row: int) -> list[str]:
        return [f"{panel * 100 + row * 10 + i:064x}.png" for i in range(3)]

    panels = [{"label": "core", "tie": False, "task_key": f"c{p}-f{p}", "class_name": "Ankle boot", "feature": p,
               "rank": 1, "count_main_object": 3, "count_separate_object": 0, "count_background": 0, "n_answers": 3,
               "images": names(p, 0), "heatmaps": names(p, 1), "attacks": names(p, 2)} for p in range(84)]
    html = render_to_string("annotation/kinds/feature_panel_results.html", {
        "summary": {"panels": panels, "threshold": 3}, "images": PageImages(None), "accuracy": None})
    page.set_content(f"<!doctype html><html><head>{_base_style()}</head><body><main>{html}</main></body></html>")
    page.set_viewport_size(SIZES[1])
    thumbs = page.locator(".fp-item .thumbs img")
    assert thumbs.count() == 84 * 9
    assert page.evaluate("() => Array.from(document.querySelectorAll('.fp-item img')).every(i => i.loading === 'lazy'"
                         " && i.closest('a.zoom') && i.closest('a.zoom').getAttribute('href') === i.getAttribute('src')"
                         " && i.closest('a.zoom').target === '_blank')")


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
