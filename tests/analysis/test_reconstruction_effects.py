"""Seed 000's planted effects as the validity bench reads them: trigger shown in the best reconstructions,
L1's clean test accuracy below the others."""
from __future__ import annotations

import numpy as np
import pytest

from analysis.reconstruction.bias import TRIGGER_VALUES, plant_other_side
from analysis.reconstruction.effects import (
    LEVELS,
    QUICK,
    TRIGGER_LEVELS,
    effects_from_results,
    planted_effects,
    trigger_recovery,
)

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
    assert effects["trigger"]["L3"]["shortcut"] is None  # a result without the accuracy under the other trigger
    results["L2"] = {**results["L2"], "test_accuracy_other_trigger": 0.70}
    assert effects_from_results(results)["trigger"]["L2"]["shortcut"] == pytest.approx(0.96 - 0.70)
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


def test_plant_other_side_gives_each_image_a_trigger_of_the_other_side():
    images, y = np.full((6, SIZE, SIZE), 0.5), np.array([-1, -1, -1, 1, 1, 1])
    triggers = [((0, 0, 2, 2), 0.0), ((4, 0, 6, 2), 0.0), ((0, 4, 2, 6), 1.0)]
    out = plant_other_side(images, y, triggers, np.random.default_rng(0))
    # the -1 side's images get the +1 side's only square (value 1), the +1 side's one of the two 0-squares
    assert (out[:3, 4:6, 0:2] == TRIGGER_VALUES[1]).all() and (out[:3, :4] == 0.5).all()
    for image in out[3:]:
        assert (image[0:2, 0:2] == 0.0).all() != (image[0:2, 4:6] == 0.0).all()
        assert (image[4:6, 0:2] == 0.5).all()
    assert (images == 0.5).all()  # the input is left alone
    with pytest.raises(ValueError, match="no trigger of value 1.0"):
        plant_other_side(images, y, triggers[:2], np.random.default_rng(0))


@pytest.mark.slow
def test_the_quick_profiles_models_take_every_trigger_level_as_a_shortcut(fashion_mnist_available):
    """The premise of seed 000 (section 4): the trigger is a shortcut the model learns. At the bench's pair and
    sizes, a test image carrying the other side's trigger is classified correctly clearly less often than the
    clean one, at every level (on T-shirt/top vs Bag, the earlier pair, L2 and L3 lost 0.8-2.7 points)."""
    from analysis.reconstruction.pipeline import build_task, build_test, make_config, run_reconstruction

    for level in TRIGGER_LEVELS:
        cfg = make_config({**QUICK, "seed": 0, "bias": level, "steps": 10})
        result = run_reconstruction(build_task(cfg), cfg, test=build_test(cfg))
        assert result["test_accuracy"] - result["test_accuracy_other_trigger"] >= 0.08, level
    base = make_config({**QUICK, "seed": 0, "bias": "base", "steps": 10})
    assert run_reconstruction(build_task(base), base, test=build_test(base))["test_accuracy_other_trigger"] is None
