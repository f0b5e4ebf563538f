"""Bias discovery by an attribute question (Stock & Cisse §3.4): the crowd's yes share per selector, role and class.

The paper asks, of the images the selectors picked (Adv and MMD-critic prototypes and criticisms),
whether they show an attribute (e.g. a person beside a basketball) and compares the attribute's share
among prototypes with its share among criticisms: an attribute frequent among the prototypes and rare
among the criticisms is one the model relies on, a dataset bias. Input: one row per judged image with
its class, the crowd's label ("yes" / "no" / None when undecided) and the (selector, role) pairs that
picked it; output: the share of "yes" among the decided images with its 95 % Wilson interval.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from analysis.misclassification.aggregation import wilson_interval

#: The selectors whose picks the paper's §3.4 inspects.
ATTRIBUTE_SELECTORS = ("adv", "mmd")
COLUMNS = ["class", "class_name", "selector", "role", "images", "decided", "yes", "yes_share_percent",
           "wilson_low_percent", "wilson_high_percent"]
POOLED_COLUMNS = ["selector", "role", "classes", "images", "decided", "yes", "yes_share_percent",
                  "wilson_low_percent", "wilson_high_percent"]


def picked_images(selections: dict, selectors: Sequence[str] = ATTRIBUTE_SELECTORS) -> list[dict]:
    """The distinct images the ``selectors`` picked, per class, each with the (selector, role) pairs that chose it.

    ``selections``: ``{str(class): {"selections": {selector: {"prototypes": [...], "criticisms": [...]}}}}``
    (the class-assignment study's form). Sorted by class, then index, so that task order is stable.
    """
    out = []
    for key in sorted(selections, key=int):
        picked: dict[int, list[list[str]]] = {}
        for selector in selectors:
            chosen = selections[key]["selections"].get(selector, {})
            for role in ("prototypes", "criticisms"):
                for index in chosen.get(role, []):
                    picked.setdefault(int(index), []).append([selector, role])
        out += [{"class": int(key), "index": i, "roles": picked[i]} for i in sorted(picked)]
    return out


def _share(yes: int, decided: int) -> dict[str, float]:
    low, high = wilson_interval(yes, decided)
    return {"yes_share_percent": 100 * yes / decided if decided else float("nan"),
            "wilson_low_percent": 100 * low, "wilson_high_percent": 100 * high}


def attribute_share_table(images: pd.DataFrame) -> pd.DataFrame:
    """Per class, selector and role: images picked, decided by the crowd, "yes" among them, share and Wilson interval.

    ``images`` has the columns ``class``, ``class_name``, ``label`` ("yes", "no" or None) and ``roles``
    (a list of ``[selector, role]``). An image both a prototype and a criticism (or picked by two
    selectors) counts in each of its rows.
    """
    rows: dict[tuple, dict] = {}
    for r in images.to_dict("records"):
        for selector, role in r["roles"]:
            row = rows.setdefault((int(r["class"]), selector, role),
                                  {"class_name": r["class_name"], "images": 0, "decided": 0, "yes": 0})
            row["images"] += 1
            row["decided"] += r["label"] in ("yes", "no")
            row["yes"] += r["label"] == "yes"
    out = [{"class": cls, "class_name": v["class_name"], "selector": selector, "role": role, "images": v["images"],
            "decided": v["decided"], "yes": v["yes"], **_share(v["yes"], v["decided"])}
           for (cls, selector, role), v in sorted(rows.items())]
    return pd.DataFrame(out, columns=COLUMNS)


def pooled_attribute_shares(table: pd.DataFrame, classes: Iterable[int] | None = None) -> pd.DataFrame:
    """Per selector and role, pooled over ``classes`` (default all): the counts summed, share and Wilson interval."""
    rows = table if classes is None else table[table["class"].isin(list(classes))]
    out = []
    for (selector, role), g in rows.groupby(["selector", "role"], sort=True):
        yes, decided = int(g["yes"].sum()), int(g["decided"].sum())
        out.append({"selector": selector, "role": role, "classes": int(g["class"].nunique()),
                    "images": int(g["images"].sum()), "decided": decided, "yes": yes, **_share(yes, decided)})
    return pd.DataFrame(out, columns=POOLED_COLUMNS)


def share_gap(pooled: pd.DataFrame) -> dict[str, float]:
    """Per selector: prototypes' yes share minus criticisms' (percentage points); positive = the model's typical
    images carry the attribute more often than its atypical ones, the paper's sign of a bias."""
    by = pooled.set_index(["selector", "role"])["yes_share_percent"]
    return {s: float(by.get((s, "prototypes"), np.nan) - by.get((s, "criticisms"), np.nan))
            for s in dict.fromkeys(pooled["selector"])}
