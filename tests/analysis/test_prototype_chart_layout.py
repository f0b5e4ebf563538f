"""The class-assignment accuracy chart (the study's Table 3 as bars): tick labels apart, legend off the error bars."""
import itertools

import numpy as np
import pandas as pd

from analysis.prototypes.selectors import CONDITIONS, condition_name, condition_title
from analysis.prototypes.table import accuracy_figure


def seven_conditions(accuracy: float = 95.0) -> pd.DataFrame:
    rows = [{"condition": condition_name(s, v), "title": condition_title(s, v), "accuracy": accuracy,
             "standard_error": 4.0, "n_correct": 19, "n_valid": 20} for s, v in CONDITIONS]
    return pd.DataFrame(rows)


def test_tick_labels_do_not_overlap_and_legend_hides_no_error_bar():
    import matplotlib.pyplot as plt
    from matplotlib.container import ErrorbarContainer

    fig = accuracy_figure(seven_conditions(), chance=1 / 6)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        boxes = [label.get_window_extent(renderer) for label in ax.get_xticklabels()]
        assert len(boxes) == 7
        for a, b in itertools.combinations(boxes, 2):
            assert not a.overlaps(b), "neighbouring condition labels overlap"
        legend = ax.get_legend().get_window_extent(renderer)
        errorbars = next(c for c in ax.containers if isinstance(c, ErrorbarContainer))
        segments = errorbars.lines[2][0].get_segments()
        assert len(segments) == 7
        for seg in segments:  # each error bar, in display coordinates, lies outside the legend's box
            (x0, y0), (x1, y1) = ax.transData.transform(np.asarray(seg))
            assert not (legend.x0 <= x0 <= legend.x1 and min(y0, y1) <= legend.y1 and max(y0, y1) >= legend.y0)
    finally:
        plt.close(fig)
