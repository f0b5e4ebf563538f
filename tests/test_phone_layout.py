"""Phone layout: the feature panel, heatmap validation and cluster review pages fit 390 px without horizontal
scrolling (rows of images wrap), seen through the task preview and the SpRAy results page in a real browser."""
import pytest

from tests.conftest import TINY_BENCHMARK, TINY_TRAINING
from tests.study_helpers import computed_study, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PHONE = {"width": 390, "height": 844}
SALIENT = {"benchmark": TINY_BENCHMARK, "training": TINY_TRAINING, "k_features": 1, "k_images": 5, "pool": 10,
           "attack_steps": 2, "classes": [1]}
SPRAY = {"benchmark": TINY_BENCHMARK, "training": TINY_TRAINING, "model": "standard", "per_class": 40, "size": 16,
         "max_k": 6, "review_classes": 1, "examples": 8, "min_cluster_size": 3}


def _fits_the_phone(page) -> dict:
    """Page width, the viewport's, and any image reaching past the right edge."""
    return page.evaluate("""() => ({
        page: document.documentElement.scrollWidth, viewport: window.innerWidth,
        outside: Array.from(document.querySelectorAll('img')).filter(
            i => i.getBoundingClientRect().right > window.innerWidth + 0.5).map(i => i.alt)})""")


def test_panel_pages_fit_a_phone(live_server, page, researcher, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    studies = [computed_study(researcher, kind, kind, settings, capture, live=False)
               for kind, settings in [("feature_panel", SALIENT), ("heatmap_validation", SALIENT),
                                      ("cluster_review", SPRAY)]]
    page.set_viewport_size(PHONE)
    sign_in(page, live_server.url, researcher.username)
    pages = [(f"/tasks/{study.tasks.order_by('id').first().pk}/preview/", "img.px") for study in studies]
    pages.append((f"/studies/{studies[-1].pk}/results/", "img"))  # SpRAy's ranking, plots and cluster views
    for url, images in pages:
        page.goto(live_server.url + url)
        # lazy images below the fold load only when scrolled to; the others must have loaded
        page.wait_for_function("() => Array.from(document.images).every(i => i.complete || i.loading === 'lazy')")
        assert page.locator(images).count() >= 5, url
        layout = _fits_the_phone(page)
        assert layout["page"] <= layout["viewport"] and not layout["outside"], (url, layout)
