"""The crowd's review of reconstructions per model: main object reconstructed (majority) and trigger clicks."""
import numpy as np
import pandas as pd
import pytest

from analysis.reconstruction.review import in_boxes, review_plot, review_table

CORNER = [0.0, 0.0, 0.125, 0.125]
MIDDLE = [0.5, 0.5, 0.625, 0.625]


def _rows():
    return pd.DataFrame([
        # L1: the trigger shows on both; one found (median click on the box), one clicked elsewhere.
        {"level": "L1", "label": "no", "reference": "no", "clicks": [[0.06, 0.05], [0.07, 0.06], [0.9, 0.9]],
         "answers": 5, "boxes": [CORNER], "trigger_shown": True},
        {"level": "L1", "label": "yes", "reference": "no", "clicks": [[0.9, 0.1]], "answers": 5,
         "boxes": [CORNER], "trigger_shown": True},
        # L2: two boxes, no trigger shows, one click on the second box.
        {"level": "L2", "label": "yes", "reference": "yes", "clicks": [[0.55, 0.6]], "answers": 5,
         "boxes": [CORNER, MIDDLE], "trigger_shown": False},
        {"level": "L2", "label": None, "reference": "yes", "clicks": [], "answers": 4,
         "boxes": [CORNER, MIDDLE], "trigger_shown": False},
        # base: no trigger anywhere, no clicks.
        {"level": "base", "label": "yes", "reference": "yes", "clicks": [], "answers": 5, "boxes": [],
         "trigger_shown": False},
    ])


def test_review_table_per_level():
    table = review_table(_rows()).set_index("level")
    assert table.index.tolist() == ["L1", "L2", "base"]
    l1, l2, base = table.loc["L1"], table.loc["L2"], table.loc["base"]
    assert (l1["reviewed"], l1["crowd_yes"], l1["reference_yes"], l1["agreement"]) == (2, 0.5, 0.0, 0.5)
    assert (l1["answers"], l1["clicks"]) == (10, 4) and l1["click_rate"] == pytest.approx(0.4)
    assert l1["clicks_in_trigger"] == pytest.approx(0.5) and l1["trigger_shown"] == 1.0 and l1["found"] == 0.5
    # A tie (None) is neither yes nor agreement.
    assert (l2["crowd_yes"], l2["reference_yes"], l2["agreement"]) == (0.5, 1.0, 0.5)
    assert l2["clicks_in_trigger"] == 1.0 and np.isnan(l2["found"])  # nothing shows: found is undefined
    assert base["clicks"] == 0 and np.isnan(base["clicks_in_trigger"]) and base["agreement"] == 1.0
    assert review_plot(review_table(_rows())).startswith(b"\x89PNG")


def test_in_boxes_margin_and_bad_rows():
    assert in_boxes([0.16, 0.1], [CORNER], margin=0.05) and not in_boxes([0.2, 0.1], [CORNER], margin=0.05)
    assert not in_boxes([0.1, 0.1], [])
    with pytest.raises(ValueError, match="clicks"):
        review_table(_rows().drop(columns="clicks"))
    with pytest.raises(ValueError, match="reference"):
        review_table(_rows().assign(reference="maybe"))
