"""Seed 000's planted effects as the validity bench reads them: trigger shown in the best reconstructions,
L1's clean test accuracy below the others."""
from __future__ import annotations

import numpy as np
import pytest

from analysis.reconstruction.effects import LEVELS, effects_from_results, planted_effects, trigger_recovery

SIZE = 8
BOX = (0, 0, 2, 2)


def _image(trigger: float | None, background: float = 0.5) -> np.ndarray:
    image = np.full((SIZE, SIZE), background)
    if trigger is not None:
        image[:2, :2] = trigger
    return image


def _result(accuracy: float, pairs: list[tuple[float | None, float | None]], shown: float = 0.8,
            noise_shown: float = 0.1) -> dict:
    """A result whose best shown pairs are (training image's trigger, its nearest reconstruction's trigger), best
    first (the reconstructions in reverse order, so that ``nearest`` and ``display_order`` are read), with the
    pipeline's ``trigger_report`` shares ``shown`` (best reconstructions) and ``noise_shown``."""
    n = len(pairs)
    train = np.stack([_image(t) for t, _ in pairs])
    candidates = np.stack([_image(r) for _, r in pairs])[::-1]
    boxes = np.array([BOX if t is not None else (-1, -1, -1, -1) for t, _ in pairs])
    values = np.array([t if t is not None else np.nan for t, _ in pairs])
    return {"test_accuracy": accuracy, "best_k_mean": 0.4, "k": n, "display_order": np.arange(n),
            "order": np.arange(n)[::-1], "nearest": np.arange(n)[::-1], "train_images": train,
            "candidates": candidates, "boxes": boxes, "trigger_values": values,
            "config": {"trigger_threshold": 0.2},
            "trigger_report": {"best_k_shown": shown, "noise_shown": noise_shown}}


def test_trigger_recovery_counts_only_pairs_whose_training_image_shows_its_trigger():
    # 1: shown and recovered; 0.5 on grey does not stand out (not eligible); 1 shown but the reconstruction
    # holds grey there (not recovered); 0 on grey shows (value 0) and is recovered
    result = _result(0.9, [(1.0, 1.0), (0.5, 1.0), (1.0, None), (0.0, 0.0)])
    assert trigger_recovery(result) == {"best_k_shown": 0.8, "noise_shown": 0.1, "eligible": 3, "recovered": 2,
                                        "share": pytest.approx(2 / 3)}


def test_effects_need_every_trigger_level_shown_and_l1_lowest():
    pairs = [(1.0, 1.0), (0.0, 0.0), (1.0, None)]
    results = {"base": _result(0.95, [(None, None)]), "L1": _result(0.90, pairs), "L2": _result(0.96, pairs),
               "L3": _result(0.97, pairs)}
    effects = effects_from_results(results)
    assert effects["trigger_shown"] and effects["l1_accuracy_lowest"]
    assert effects["test_accuracy"] == {"base": 0.95, "L1": 0.90, "L2": 0.96, "L3": 0.97}
    assert effects["trigger"]["L3"]["share"] == pytest.approx(2 / 3)
    # L1 not below the base model; one level whose best reconstructions rarely show a square
    results["L1"] = _result(0.95, pairs)
    results["L3"] = _result(0.97, pairs, shown=0.4)
    effects = effects_from_results(results)
    assert not effects["l1_accuracy_lowest"] and not effects["trigger_shown"]
    # a share no better than chance is no effect either
    results["L3"] = _result(0.97, pairs, shown=0.8, noise_shown=0.9)
    assert not effects_from_results(results)["trigger_shown"]
    with pytest.raises(ValueError, match="L2"):
        effects_from_results({k: v for k, v in results.items() if k != "L2"})
    with pytest.raises(ValueError, match="test accuracy"):
        effects_from_results({**results, "base": {**results["base"], "test_accuracy": None}})


@pytest.mark.slow
def test_planted_effects_runs_the_four_models_of_a_seed(fashion_mnist_available):
    seen = []
    effects = planted_effects(3, {"per_side": 4, "hidden": 16, "steps": 5, "test_limit": 10, "k": 4},
                              progress=lambda level, result: seen.append((level, result["config"]["seed"])))
    assert seen == [(level, 3) for level in LEVELS] and effects["seed"] == 3
    assert effects["config"]["per_side"] == 4 and effects["config"]["size"] == 16
    accuracy = effects["test_accuracy"]
    assert effects["l1_accuracy_lowest"] == (accuracy["L1"] < min(accuracy["base"], accuracy["L2"], accuracy["L3"]))
    assert set(effects["trigger"]) == {"L1", "L2", "L3"} and isinstance(effects["trigger_shown"], bool)
