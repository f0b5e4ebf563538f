"""Statistics of the crowd's feature labels (Singla & Feizi §4, Fig. 4 b–d).

From one row per labelled (class, feature) — columns ``class``, ``class_name``, ``feature``,
``rank`` (1 = the class's most important feature, §3.2 Def. 1) and ``label`` (``core`` /
``spurious``; other values, e.g. undecided ties, are left out):

* :func:`spurious_per_class`: per class its numbers of core and spurious features, and whether all
  of them are spurious (§4: "for 3 classes … all features were found to be spurious");
* :func:`spurious_histogram`: Fig. 4(b), the number of classes against their number of spurious features;
* :func:`spurious_by_rank`: Fig. 4(c), per feature rank the number of classes whose feature at that
  rank is spurious, with its share of the labelled features at that rank;
* :func:`shared_spurious`: Fig. 4(d), the classes × classes matrix of the number of neural features
  spurious for both (diagonal zeroed, as in the figure), and the list of those features with their classes.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

LABELS = ("core", "spurious")


def labelled(table: pd.DataFrame) -> pd.DataFrame:
    """The rows whose label is ``core`` or ``spurious``."""
    missing = {"class", "class_name", "feature", "rank", "label"} - set(table.columns)
    if missing:
        raise ValueError(f"feature labels need the column(s) {', '.join(sorted(missing))}")
    rows = table[table["label"].isin(LABELS)].copy()
    for column in ("class", "feature", "rank"):
        rows[column] = rows[column].astype(int)
    return rows


def spurious_per_class(table: pd.DataFrame) -> pd.DataFrame:
    """Per class with a labelled feature: ``features``, ``core``, ``spurious``, ``all_spurious``."""
    rows = labelled(table)
    per_class = (rows.assign(core=rows["label"].eq("core"), spurious=rows["label"].eq("spurious"))
                 .groupby(["class", "class_name"], sort=True)
                 .agg(features=("label", "size"), core=("core", "sum"), spurious=("spurious", "sum"))
                 .reset_index())
    per_class["all_spurious"] = per_class["spurious"].eq(per_class["features"])
    return per_class[["class", "class_name", "features", "core", "spurious", "all_spurious"]]


def spurious_histogram(table: pd.DataFrame) -> pd.DataFrame:
    """Fig. 4(b): for n = 0 … the most features a class has, the number of classes with n spurious features."""
    per_class = spurious_per_class(table)
    top = int(per_class["features"].max()) if len(per_class) else 0
    counts = per_class["spurious"].value_counts()
    return pd.DataFrame({"spurious_features": np.arange(top + 1),
                         "classes": [int(counts.get(n, 0)) for n in range(top + 1)]})


def spurious_by_rank(table: pd.DataFrame) -> pd.DataFrame:
    """Fig. 4(c): per feature rank, ``labelled`` features, ``spurious`` ones (= classes whose feature at
    that rank is spurious) and ``spurious_share`` (spurious / labelled)."""
    rows = labelled(table)
    by_rank = (rows.assign(spurious=rows["label"].eq("spurious")).groupby("rank", sort=True)
               .agg(labelled=("label", "size"), spurious=("spurious", "sum")).reset_index())
    by_rank["spurious"] = by_rank["spurious"].astype(int)
    by_rank["spurious_share"] = by_rank["spurious"] / by_rank["labelled"]
    return by_rank


def shared_spurious(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fig. 4(d): (matrix, list).

    ``matrix``: rows and columns the classes with a spurious feature (by class name), entry (a, b) the
    number of neural features spurious for both a and b, the diagonal zeroed as in the figure.
    ``list``: one row per neural feature spurious for at least two classes: ``feature``, ``n_classes``,
    ``classes`` and ``class_names`` (``; ``-separated, by class index)."""
    rows = labelled(table)
    spurious = rows[rows["label"] == "spurious"]
    names = dict(zip(spurious["class"], spurious["class_name"]))
    classes = sorted(names)
    position = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=int)
    shared = []
    for feature, group in spurious.groupby("feature", sort=True):
        members = sorted(set(group["class"]))
        for a, b in combinations(members, 2):
            matrix[position[a], position[b]] += 1
            matrix[position[b], position[a]] += 1
        if len(members) > 1:
            shared.append({"feature": int(feature), "n_classes": len(members),
                           "classes": "; ".join(map(str, members)),
                           "class_names": "; ".join(names[c] for c in members)})
    labels = [names[c] for c in classes]
    shared_list = pd.DataFrame(shared, columns=["feature", "n_classes", "classes", "class_names"])
    shared_list = shared_list.sort_values(["n_classes", "feature"], ascending=[False, True], ignore_index=True)
    return pd.DataFrame(matrix, index=pd.Index(labels, name="class"), columns=labels), shared_list


def label_statistics(table: pd.DataFrame) -> dict[str, object]:
    """Everything above, with the headline counts of §4 (features per label, classes with a spurious
    feature, classes whose features are all spurious)."""
    per_class = spurious_per_class(table)
    matrix, shared_list = shared_spurious(table)
    return {
        "per_class": per_class, "histogram": spurious_histogram(table), "by_rank": spurious_by_rank(table),
        "shared_matrix": matrix, "shared_list": shared_list,
        "counts": {"classes": len(per_class), "features": int(per_class["features"].sum()),
                   "core": int(per_class["core"].sum()), "spurious": int(per_class["spurious"].sum()),
                   "classes_with_spurious": int(per_class["spurious"].gt(0).sum()),
                   "all_spurious_classes": per_class.loc[per_class["all_spurious"], "class_name"].tolist(),
                   "shared_features": len(shared_list)},
    }
