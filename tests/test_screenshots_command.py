"""``make screenshots`` (``manage.py screenshots``): a PNG of every page at both sizes, the results page of every
kind included (the model-based ones on tiny data and random models made under the output folder), none blank."""
from __future__ import annotations

import numpy as np
import pytest
from django.core.management import call_command
from PIL import Image

from annotation.management.commands.screenshots import SIZES, results_page_name
from annotation.task_kinds import TASK_KINDS

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.mark.django_db(transaction=True)  # the command serves its pages from a thread of this process
def test_the_png_set_names_every_kinds_results_page(tmp_path):
    out = tmp_path / "shots"
    call_command("screenshots", out=str(out))
    for size in SIZES:
        names = {p.stem for p in (out / size).glob("*.png")}
        missing = {results_page_name(kind) for kind in TASK_KINDS} - names
        assert not missing, (size, sorted(missing), sorted(names))
        assert {"worker-task", "worker-consent", "study-list", "registry"} <= names
        for kind in TASK_KINDS:
            image = np.asarray(Image.open(out / size / f"{results_page_name(kind)}.png").convert("L"))
            assert image.shape[1] == SIZES[size]["width"] and image.shape[0] >= SIZES[size]["height"]
            assert image.std() > 10, (size, kind)  # not a blank page
    assert (out / ".own-data" / "train").is_dir()  # the own data lies under the output folder
