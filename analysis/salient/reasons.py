"""The reasons workers give for their answers (Singla & Feizi App. F).

App. F reads the free-text reasons of the feature-panel study: which words workers use for each
answer, and how often they name the "highlighted" (heatmaps) against the "amplified"
(feature-attack) views — the paper counts >1200 "highlighted" against 29 "amplified".
:func:`top_words` counts words per group (e.g. per answer) with English stop words removed
(scikit-learn's list); :func:`view_mentions` counts the reasons naming each view.
"""
from __future__ import annotations

import re
from functools import cache

import pandas as pd

#: The HIT's names for the heatmaps and the feature attacks (App. C, F).
VIEW_WORDS = ("highlighted", "amplified")
WORD = re.compile(r"[a-z][a-z']*[a-z]|[a-z]")


@cache
def stop_words() -> frozenset[str]:
    # deferred: loads scikit-learn (the platform starts without it)
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


def words(text: str) -> list[str]:
    """Lower-case words of ``text`` of two letters or more, without English stop words."""
    stop = stop_words()
    return [w for w in WORD.findall(str(text).lower()) if len(w) > 1 and w not in stop]


def top_words(reasons: pd.DataFrame, group: str = "answer", top: int = 10) -> pd.DataFrame:
    """Per value of ``group``: its ``top`` most frequent words in ``reason`` (ties by word), with
    ``count`` (occurrences), ``reasons`` (how many reasons of the group use it) and ``rank``."""
    rows = []
    for value, frame in reasons.groupby(group, sort=True):
        counts: dict[str, int] = {}
        used: dict[str, int] = {}
        for text in frame["reason"]:
            found = words(text)
            for w in found:
                counts[w] = counts.get(w, 0) + 1
            for w in set(found):
                used[w] = used.get(w, 0) + 1
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
        rows += [{group: value, "rank": i + 1, "word": w, "count": c, "reasons": used[w]}
                 for i, (w, c) in enumerate(ranked)]
    return pd.DataFrame(rows, columns=[group, "rank", "word", "count", "reasons"])


def view_mentions(reasons: pd.Series) -> dict[str, int]:
    """How many times each view's name occurs in the reasons (App. F's count of "highlighted"/"amplified")."""
    text = " ".join(str(r).lower() for r in reasons)
    return {view: len(re.findall(rf"\b{view}\b", text)) for view in VIEW_WORDS}
