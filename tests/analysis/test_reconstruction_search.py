"""The reconstruction hyper-parameter search (Haim et al. 2022, App.): the reference sweep's distributions, seeded
draws, and each trial's score equal to a reconstruction run alone with its parameters."""
import numpy as np
import pytest

from analysis.reconstruction.data import binary_task
from analysis.reconstruction.model import HomogeneousMLP
from analysis.reconstruction.pipeline import make_config
from analysis.reconstruction.reconstruct import reconstruct
from analysis.reconstruction.scoring import score
from analysis.reconstruction.search import SPACE, hyperparameter_search, sample_trials
from analysis.reconstruction.train import train_full_batch


def test_draws_follow_the_reference_sweep_and_are_seeded():
    draws = sample_trials(400, seed=3)
    assert draws == sample_trials(400, seed=3) and draws != sample_trials(400, seed=4)
    for name, (_, kind, low, high) in SPACE.items():
        values = np.array([d[name] for d in draws])
        assert values.min() >= low and values.max() <= high
        # log-uniform: half the draws below the geometric mean; uniform: below the arithmetic mean
        middle = np.sqrt(low * high) if kind == "log_uniform" else (low + high) / 2
        assert 0.4 < (values < middle).mean() < 0.6, name
    with pytest.raises(ValueError, match="at least one trial"):
        sample_trials(0)


def test_search_ranks_trials_by_best_k_ssim_equal_to_single_runs():
    rng = np.random.default_rng(0)
    images, labels = rng.random((20, 8, 8)), np.repeat([0, 1], 10)
    images[labels == 1, 2:6, 2:6] += 1.0
    task = binary_task(np.clip(images, 0, 1), labels, (0, 1), per_side=5, size=8)
    config = make_config({"hidden": 16, "steps": 15, "log_every": 5, "k": 4, "train_max_epochs": 300})
    table, info = hyperparameter_search(task, config, trials=3, seed=1)
    assert list(table["trial"]) == [1, 2, 3] and sorted(table["rank"]) == [1, 2, 3]
    ranked = table.sort_values("rank")["best_k_mean"].to_numpy()
    assert (np.diff(ranked[np.isfinite(ranked)]) <= 0).all()
    assert info["best"]["trial"] == int(table.loc[table["rank"] == 1, "trial"].iloc[0])
    # trial 2 again, alone: same model (same seed and training), same draw -> the same score
    draw = sample_trials(3, seed=1)[1]
    row = table.set_index("trial").loc[2]
    assert {name: row[name] for name in SPACE} == pytest.approx(draw)
    model = HomogeneousMLP(task.x.shape[1], hidden=16, init_scale=config["init_scale"], seed=config["seed"])
    train_full_batch(model, task.x, task.y, lr=config["train_lr"], max_lr=config["train_max_lr"],
                     tol=config["train_tol"], max_epochs=300)
    rec = reconstruct(model, 2 * len(task), steps=15, lr=draw["lr"], lambda_lr=config["lambda_lr"],
                      init_scale=draw["rec_init_scale"], lambda_min=draw["lambda_min"], alpha=draw["alpha"],
                      log_every=5, seed=config["seed"])
    raw = rec.candidates.reshape(-1, 8, 8)
    if np.isfinite(raw).all():
        assert row["best_k_mean"] == pytest.approx(score(task.images, task.mean, raw, k=4).best_k_mean)
    else:
        assert np.isnan(row["best_k_mean"])
