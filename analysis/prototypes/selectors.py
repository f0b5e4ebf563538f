"""The four selectors of the study, per class: Adv, MMD-critic, Probs and Random.

Each takes the candidates of one class (their positions ``0..n-1`` in per-class arrays) and returns
``k`` prototypes and ``k`` criticisms (Random: ``k`` random images as prototypes, no criticisms),
as positions into the class's candidates, best first.
"""
from __future__ import annotations

from collections.abc import Mapping

import attrs
import numpy as np

from analysis.prototypes.adversarial import FlipSteps, adv_ranking
from analysis.prototypes.mmd_critic import DEFAULT_REG, mmd_critic

SELECTORS = ("adv", "mmd", "probs", "random")
SELECTOR_TITLES = {"adv": "Adv", "mmd": "MMD", "probs": "Probs", "random": "Random"}


@attrs.frozen
class Selection:
    prototypes: np.ndarray
    criticisms: np.ndarray


def _take(order: np.ndarray, k: int, exclude: np.ndarray | None = None) -> np.ndarray:
    if exclude is not None and len(exclude):
        order = order[~np.isin(order, exclude)]
    return np.asarray(order[:k], dtype=np.int64)


def adv_select(flips: FlipSteps, k: int) -> Selection:
    """Prototypes: the most robust to IFGSM; criticisms: those flipped after one step (then fewest steps)."""
    proto_order, crit_order = adv_ranking(flips)
    prototypes = _take(proto_order, k)
    return Selection(prototypes, _take(crit_order, k, prototypes))


def probs_select(probs: np.ndarray, k: int, seed: int = 0, high: float = 0.9, low: float = 0.1) -> Selection:
    """Prototypes: a seeded sample of those with p(y|x) > ``high``; criticisms: p(y|x) < ``low``.

    When fewer than ``k`` pass a threshold, the most (least) confident of the rest fill up.
    """
    rng = np.random.default_rng(seed)
    probs = np.asarray(probs, dtype=np.float64)

    def pick(passing: np.ndarray, fallback: np.ndarray, exclude: np.ndarray) -> np.ndarray:
        passing = passing[~np.isin(passing, exclude)]
        chosen = rng.permutation(passing)[:k]
        if len(chosen) < k:
            chosen = np.concatenate([chosen, _take(fallback, k - len(chosen), np.concatenate([chosen, exclude]))])
        return chosen.astype(np.int64)

    none = np.array([], dtype=np.int64)
    prototypes = pick(np.flatnonzero(probs > high), np.argsort(-probs, kind="stable"), none)
    criticisms = pick(np.flatnonzero(probs < low), np.argsort(probs, kind="stable"), prototypes)
    return Selection(prototypes, criticisms)


def random_select(n: int, k: int, seed: int = 0) -> Selection:
    return Selection(np.random.default_rng(seed).permutation(n)[:k].astype(np.int64), np.array([], dtype=np.int64))


def mmd_select(features: np.ndarray, k: int, gamma: float | None = None, reg: float = DEFAULT_REG) -> Selection:
    """MMD-critic on one class's features: ``gamma`` is the RBF parameter, the paper's λ = 1e-5
    (:data:`~analysis.prototypes.mmd_critic.PAPER_GAMMA`), None = median heuristic; ``reg`` the
    log-det weight (default 1). See :mod:`analysis.prototypes.mmd_critic`."""
    n_proto = min(k, len(features))
    sel = mmd_critic(features, n_proto, min(k, len(features) - n_proto), gamma=gamma, reg=reg)
    return Selection(sel.prototypes, sel.criticisms)


def select_class(selector: str, *, k: int, seed: int, features: np.ndarray, probs: np.ndarray,
                 flips: FlipSteps, mmd: Mapping | None = None) -> Selection:
    """One selector on one class's candidates (``features``, true-class ``probs`` and ``flips`` aligned).

    ``mmd``: keyword arguments of :func:`mmd_select` (``gamma``, the paper's λ; ``reg``)."""
    if selector == "adv":
        return adv_select(flips, k)
    if selector == "mmd":
        return mmd_select(features, k, **dict(mmd or {}))
    if selector == "probs":
        return probs_select(probs, k, seed)
    if selector == "random":
        return random_select(len(probs), k, seed)
    raise ValueError(f"unknown selector {selector!r}; use {', '.join(SELECTORS)}")


def shown_images(selection: Selection, shown: str, k: int) -> np.ndarray:
    """The ``k`` images a group shows: ``P`` = k prototypes; ``PC`` = ceil(k/2) prototypes + the rest criticisms."""
    if shown == "P":
        return selection.prototypes[:k]
    if shown == "PC":
        n_proto = k - k // 2
        crit = selection.criticisms[: k - n_proto]
        return np.concatenate([selection.prototypes[:n_proto], crit,
                               selection.prototypes[n_proto:n_proto + (k - n_proto - len(crit))]])
    raise ValueError(f"unknown display {shown!r}; use P or PC")


#: The paper's seven conditions: (selector, shown).
CONDITIONS = (("adv", "PC"), ("mmd", "PC"), ("probs", "PC"), ("adv", "P"), ("mmd", "P"), ("probs", "P"),
              ("random", "P"))


def condition_name(selector: str, shown: str) -> str:
    return f"{selector}-{shown.lower()}"


def condition_title(selector: str, shown: str) -> str:
    if selector == "random":
        return "Random"
    return f"{SELECTOR_TITLES[selector]} - " + ("Prototypes and Criticisms" if shown == "PC" else "Prototypes only")
