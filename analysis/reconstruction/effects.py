"""The seed paper's planted effects on one seed, measured as the paper does, for a validity bench.

Seed 000 trains one model per trigger level (section 4.1: L1 the top-left corner, L2 3 and L3 5
random positions per class, the square 0 on one class and 1 on the other on every training image)
beside the base model, and reads two effects:

``trigger_shown``
    the trigger is reconstructed: it shows in the best reconstructions (section 5.3.1, Fig. 5).
    For each trigger level, the share of the ``k`` best reconstructions as the paper shows them
    (each training image's nearest reconstruction, sorted by its SSIM, the reference notebooks'
    display; :attr:`~.scoring.Score.display_order`) in which one of the level's squares stands
    out towards its value (:func:`~.scoring.shown_trigger`, the pipeline's ``trigger_threshold``)
    must reach :data:`SHOWN_SHARE` and beat the share of unit-noise candidates that show one by
    chance (the pipeline's ``trigger_report``).  A stricter figure is reported beside it, not
    required: among those best pairs whose *training image* shows its trigger, the share whose
    reconstruction shows that same square at the same place (:func:`trigger_recovery`).
``l1_accuracy_lowest``
    the L1 model, whose trigger alone separates the training set from one fixed place, learns the
    main object least: its clean test accuracy is below that of the base, L2 and L3 models
    (section 5.3.1: "the reconstructed samples for the first level of difficulty have poor quality
    ... model L1 has poor generalisation"; Fig. 6 and 7, where L1 has the lowest accuracy).

:func:`planted_effects` trains and reconstructs the four models of one seed (the demo's quick
profile by default, :data:`QUICK`) and returns both effects with the figures behind them;
:func:`effects_from_results` reads them from results already computed.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .bias import DEFAULT_PAIR, VARIANTS

LEVELS = VARIANTS["positional"]
TRIGGER_LEVELS = tuple(level for level in LEVELS if level != "base")
#: The demo's quick profile (``manage.py demo`` without ``--full``): the positional protocol on
#: Fashion-MNIST T-shirt/top vs Shirt (:data:`~.bias.DEFAULT_PAIR`) at 16 px, 15 images per side, width 500,
#: 1,200 reconstruction steps (600 until 2026-12-08; the reference code's runs take 50,000).
QUICK: dict[str, Any] = {"source": "fashion-mnist", "classes": list(DEFAULT_PAIR), "per_side": 15, "size": 16,
                         "hidden": 500, "steps": 1200}
#: Share of the best reconstructions that must show one of the level's squares.
SHOWN_SHARE = 0.5


def trigger_recovery(result: Mapping[str, Any]) -> dict[str, Any]:
    """Among the ``k`` best shown pairs whose training image shows its trigger, how many reconstructions show it.

    Parameters
    ----------
    result : dict
        A trigger level's :func:`~.pipeline.run_reconstruction` result (or :func:`~.pipeline.load`).

    Returns
    -------
    dict
        ``best_k_shown`` and ``noise_shown`` (the pipeline's ``trigger_report``: the share of the
        best reconstructions, and of noise candidates, in which one of the level's squares shows),
        ``eligible`` (best pairs whose training image shows its trigger), ``recovered`` (of those,
        reconstructions showing the same square) and ``share`` (NaN without eligible pairs).
    """
    from .scoring import trigger_standout

    threshold = float(result["config"]["trigger_threshold"])
    order = np.asarray(result["display_order"])[: int(result["k"])]
    images = np.asarray(result["train_images"], np.float64)
    shown = np.asarray(result["candidates"], np.float64)[np.asarray(result["nearest"])]
    boxes, values = np.asarray(result["boxes"]), np.asarray(result["trigger_values"])
    eligible = recovered = 0
    for i in order:
        if boxes[i][0] < 0:
            continue
        if trigger_standout(images[i:i + 1], boxes[i], values[i])[0] < threshold:
            continue
        eligible += 1
        recovered += int(trigger_standout(shown[i:i + 1], boxes[i], values[i])[0] >= threshold)
    report = result["trigger_report"]
    return {"best_k_shown": float(report["best_k_shown"]), "noise_shown": float(report["noise_shown"]),
            "eligible": eligible, "recovered": recovered,
            "share": recovered / eligible if eligible else float("nan")}


def effects_from_results(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Both planted effects from the results of the base model and the three trigger levels.

    Parameters
    ----------
    results : {level: result}
        :func:`~.pipeline.run_reconstruction` results for ``base``, ``L1``, ``L2``, ``L3``, each
        with its clean test accuracy.

    Returns
    -------
    dict
        ``trigger_shown`` and ``l1_accuracy_lowest`` (bools), and the figures: ``test_accuracy``,
        ``best_k_mean`` per level, ``trigger`` (per trigger level, :func:`trigger_recovery` and ``shortcut``: the
        clean test accuracy minus that with the other side's trigger, how much the model takes the trigger as a
        shortcut; None in results without it).
    """
    missing = [level for level in LEVELS if level not in results]
    if missing:
        raise ValueError(f"results lack the level(s) {', '.join(missing)}")
    accuracy = {level: results[level]["test_accuracy"] for level in LEVELS}
    if any(value is None for value in accuracy.values()):
        raise ValueError("every result needs its clean test accuracy (run_reconstruction(..., test=...))")
    trigger = {level: trigger_recovery(results[level]) for level in TRIGGER_LEVELS}
    for level in TRIGGER_LEVELS:
        other = results[level].get("test_accuracy_other_trigger")
        trigger[level]["shortcut"] = None if other is None else float(accuracy[level] - other)
    shown = all(t["best_k_shown"] >= SHOWN_SHARE and t["best_k_shown"] > t["noise_shown"] for t in trigger.values())
    return {
        "trigger_shown": bool(shown),
        "l1_accuracy_lowest": bool(accuracy["L1"] < min(accuracy[level] for level in LEVELS if level != "L1")),
        "test_accuracy": accuracy,
        "best_k_mean": {level: float(results[level]["best_k_mean"]) for level in LEVELS},
        "trigger": trigger,
    }


def planted_effects(seed: int, config: Mapping[str, Any] | None = None,
                    progress: Callable[[str, dict], None] | None = None) -> dict[str, Any]:
    """Train and reconstruct the base model and L1-L3 on ``seed``; return :func:`effects_from_results`.

    Parameters
    ----------
    seed : int
        Seeds the training images, the trigger positions, the models and the reconstructions.
    config : dict, optional
        Pipeline overrides on top of :data:`QUICK` (e.g. ``{"device": "cuda"}``); ``bias`` and
        ``seed`` are set here.
    progress : callable, optional
        ``progress(level, result)`` after each model.

    Returns
    -------
    dict
        :func:`effects_from_results` plus ``seed`` and ``config``.
    """
    from .pipeline import build_task, build_test, make_config, run_reconstruction

    base = {**QUICK, **dict(config or {}), "seed": int(seed)}
    results = {}
    for level in LEVELS:
        cfg = make_config({**base, "bias": level})
        results[level] = run_reconstruction(build_task(cfg), cfg, test=build_test(cfg))
        if progress is not None:
            progress(level, results[level])
    return {"seed": int(seed), "config": make_config(base), **effects_from_results(results)}
