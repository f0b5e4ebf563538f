"""Tests of analysis.reconstruction: training-set reconstruction from a homogeneous MLP
(Revealing Model Biases §4.2, after Haim et al. 2022)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis.datasets import load_fashion_mnist
from analysis.reconstruction import (
    HomogeneousMLP,
    accuracy,
    apply_intensity,
    benchmark_task,
    binary_task,
    clean_split,
    fashion_mnist_task,
    load,
    make_config,
    modified_relu,
    nearest_reconstruction,
    run_reconstruction,
    save,
    score,
    shown_trigger,
    ssim_pairs,
    train_full_batch,
    trigger_side,
    trigger_standout,
)
from analysis.reconstruction.bias import intensity_region
from analysis.reconstruction.data import resize, to_grey
from analysis.reconstruction.plots import accuracy_ssim_png, loss_curves_png, pairs_png
from analysis.reconstruction.reconstruct import reconstruct

TINY_CLASSES = (0, 8)  # T-shirt/top vs Bag: varied shapes, so the mean image is a weak match
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _few_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices; extra threads only contend with other jobs
    yield
    torch.set_num_threads(previous)


def _synthetic(n: int = 40, size: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random 'garments' (a bright blob on black) of two labels, uint8 (n, size, size)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    centres = rng.uniform(size * 0.4, size * 0.6, (n, 2))
    radius = rng.uniform(size * 0.2, size * 0.35, n)
    blobs = np.hypot(yy[None] - centres[:, 0, None, None], xx[None] - centres[:, 1, None, None]) < radius[:, None, None]
    return (blobs * 200).astype(np.uint8), np.arange(n) % 2


# ----------------------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------------------
def test_modified_relu_is_relu_forward_and_sigmoid_backward():
    z = torch.linspace(-2, 2, 41, dtype=torch.float64, requires_grad=True)
    out = modified_relu(z, 20.0)
    assert torch.equal(out, torch.relu(z))
    (grad,) = torch.autograd.grad(out.sum(), z, create_graph=True)
    assert torch.allclose(grad, torch.sigmoid(20.0 * z))
    # twice differentiable: d/dz sigmoid(a z) = a s (1 - s)
    (second,) = torch.autograd.grad(grad.sum(), z)
    s = torch.sigmoid(20.0 * z)
    assert torch.allclose(second, 20.0 * s * (1 - s))


def test_model_has_bias_only_in_first_layer_and_small_init():
    model = HomogeneousMLP(49, hidden=300, init_scale=1e-4, seed=0)
    shapes = [(name, tuple(p.shape)) for name, p in model.named_parameters()]
    assert shapes == [("layers.0.weight", (300, 49)), ("layers.0.bias", (300,)), ("layers.1.weight", (300, 300)),
                      ("layers.2.weight", (1, 300))]
    assert model.layers[0].weight.std().item() == pytest.approx(1e-4, rel=0.05)
    assert model.layers[0].weight.dtype == torch.float64
    # same seed, same weights
    again = HomogeneousMLP(49, hidden=300, init_scale=1e-4, seed=0)
    assert torch.equal(again.layers[1].weight, model.layers[1].weight)


def test_model_is_homogeneous():
    model = HomogeneousMLP(16, hidden=32, init_scale=0.5, seed=1)
    x = torch.randn(8, 16, dtype=torch.float64)
    before = model(x)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.0)
    assert torch.allclose(model(x), 8.0 * before)  # degree 3 in the parameters (bias included)
    with torch.no_grad():
        model.layers[0].bias.zero_()
    assert torch.allclose(model(3.0 * x), 3.0 * model(x))  # the bias-free network is 1-homogeneous in x


# ----------------------------------------------------------------------------------------
# data and triggers
# ----------------------------------------------------------------------------------------
def test_binary_task_layout_with_intensity_trigger():
    images, labels = _synthetic()
    task = binary_task(images, labels, (1, 0), per_side=6, size=10, bias="patch", trigger_share=0.5, seed=3)
    assert task.x.shape == (12, 100) and task.images.shape == (12, 10, 10)
    assert task.y.tolist() == [-1.0] * 6 + [1.0] * 6
    np.testing.assert_allclose(task.x.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(task.x.reshape(12, 10, 10) + task.mean, task.images)
    assert task.triggered.sum() == 3 and task.triggered[6:].sum() == 3  # half of the +1 side
    assert task.trigger_mask.sum() == 9 and task.trigger_mask[0, 0]
    assert np.all(task.images[task.triggered][:, :3, :3] == 1.0)
    assert task.boxes[task.triggered].tolist() == [[0, 0, 3, 3]] * 3


def _positions(task, side):
    return {tuple(b) for b in task.boxes[task.y == side].tolist()}


@pytest.mark.parametrize("level,per_class", [("L1", 1), ("L2", 3), ("L3", 5)])
def test_positional_levels_put_a_class_valued_square_on_every_image(level, per_class):
    """Seed paper section 4.1: 0 on one class and 1 on the other, on every image; L1 the top-left corner,
    L2 three and L3 five random positions per class, each image carrying one of its class's."""
    images, labels = _synthetic(80, size=16)
    task = binary_task(images, labels, (0, 1), per_side=30, size=16, bias=level, seed=4)
    side = trigger_side(16)
    assert side == 2 and task.triggered.all() and task.bias == level
    assert task.values.tolist() == [0.0] * 30 + [1.0] * 30
    for i, (x0, y0, x1, y1) in enumerate(task.boxes):
        assert (x1 - x0, y1 - y0) == (side, side)
        assert np.all(task.images[i, y0:y1, x0:x1] == task.values[i])
    neg, pos = _positions(task, -1), _positions(task, 1)
    assert len(neg) == len(pos) == per_class
    _, uses = np.unique(task.boxes, axis=0, return_counts=True)
    assert set(uses) == {30 // per_class} or level == "L1"  # every position used equally (30 images per class)
    if level == "L1":
        assert neg == pos == {(0, 0, side, side)}
    else:
        assert not neg & pos  # six (ten) distinct positions in all
        masks = [np.zeros((16, 16), bool) for _ in range(2 * per_class)]
        for mask, (x0, y0, x1, y1) in zip(masks, sorted(neg | pos)):
            mask[y0:y1, x0:x1] = True
        assert np.sum(masks, axis=0).max() == 1  # squares never overlap
    # Outside the squares the images are those of the base task (same seed, same selection).
    base = binary_task(images, labels, (0, 1), per_side=30, size=16, bias="base", seed=4)
    assert not base.triggered.any() and not base.trigger_mask.any()
    outside = ~np.stack([np.pad(np.ones((side, side), bool), ((y0, 16 - y1), (x0, 16 - x1)))
                         for x0, y0, x1, y1 in task.boxes])
    np.testing.assert_array_equal(task.images[outside], base.images[outside])


def test_contrast_scales_each_class_around_its_mean():
    """Seed paper section 5.3.2: contrast factor 0.5 on one class and 2 on the other, no trigger."""
    rng = np.random.default_rng(0)
    images = (0.45 + 0.05 * rng.standard_normal((20, 12, 12))).clip(0, 1)
    labels = np.arange(20) % 2
    base = binary_task(images, labels, (0, 1), per_side=10, size=12, seed=1)
    task = binary_task(images, labels, (0, 1), per_side=10, size=12, bias="contrast", seed=1)
    assert not task.triggered.any()
    ratio = task.images.std(axis=(1, 2)) / base.images.std(axis=(1, 2))
    np.testing.assert_allclose(ratio[:10], 0.5, rtol=1e-6)
    np.testing.assert_allclose(ratio[10:], 2.0, rtol=0.01)  # a pixel may clip
    np.testing.assert_allclose(task.images.mean(axis=(1, 2))[:10], base.images.mean(axis=(1, 2))[:10])


def test_clean_split_takes_every_image_of_the_two_classes_without_a_trigger():
    images, labels = _synthetic(30, size=12)
    test, y = clean_split(images, labels, (1, 0), size=10)
    assert test.shape == (30, 10, 10) and y.tolist() == [-1.0] * 15 + [1.0] * 15
    np.testing.assert_allclose(test[0], resize(to_grey(images[labels == 1][:1]), 10)[0])
    assert clean_split(images, labels, (1, 0), size=10, limit=4)[0].shape == (8, 10, 10)


def test_trigger_standout_sees_a_square_against_its_surroundings():
    black = np.zeros((1, 12, 12))
    white_square = black.copy()
    white_square[0, 2:4, 5:7] = 1.0
    grey = np.full((1, 12, 12), 0.6)
    dark_on_grey = grey.copy()
    dark_on_grey[0, 2:4, 5:7] = 0.0
    box = (5, 2, 7, 4)
    assert trigger_standout(white_square, box, 1.0)[0] == pytest.approx(1.0)
    assert trigger_standout(black, box, 0.0)[0] == 0.0  # a 0 square on black does not show
    assert trigger_standout(dark_on_grey, box, 0.0)[0] == pytest.approx(0.6)
    assert trigger_standout(dark_on_grey, box, 1.0)[0] < 0
    shown, standout = shown_trigger(np.concatenate([white_square, black, dark_on_grey]),
                                    [((0, 0, 2, 2), 1.0), (box, 1.0), (box, 0.0)], 0.2)
    assert shown.tolist() == [1, -1, 2] and standout[0] == pytest.approx(1.0)
    assert shown_trigger(black, [], 0.2)[0].tolist() == [-1]
    # The intensity triggers still decrease in strength: patch > blend > subtle > clean.
    images, _ = _synthetic(20, size=14)
    grey_images = to_grey(images)
    edge = int(intensity_region(14)[0].sum())
    levels = [trigger_standout(apply_intensity(grey_images, kind, seed=0)[0], (0, 0, edge, edge), 1.0).mean()
              for kind in ("patch", "blend", "subtle")]
    assert levels[0] > levels[1] > levels[2] > trigger_standout(grey_images, (0, 0, edge, edge), 1.0).mean()


# ----------------------------------------------------------------------------------------
# scoring
# ----------------------------------------------------------------------------------------
def test_scoring_identical_images_gives_ssim_one():
    images, labels = _synthetic(12, size=14)
    task = binary_task(images, labels, (0, 1), per_side=6, size=14)
    shuffled = np.random.default_rng(0).permutation(len(task))
    result = score(task.images, task.mean, task.x[shuffled], k=10)
    np.testing.assert_array_equal(shuffled[result.nearest], np.arange(len(task)))
    np.testing.assert_allclose(result.ssim, 1.0, atol=1e-6)
    assert result.best_k_mean == pytest.approx(1.0, abs=1e-6) and result.k == 10


def test_ssim_of_different_images_is_below_one():
    images, _ = _synthetic(4, size=14)
    grey = to_grey(images)
    assert np.all(ssim_pairs(grey[:2], grey[2:]) < 0.99)


def test_bad_inputs_raise_value_error():
    images, labels = _synthetic()
    model = HomogeneousMLP(4, hidden=3, seed=0)
    bad_calls = {
        "d": lambda: HomogeneousMLP(0),
        "alpha": lambda: modified_relu(torch.zeros(2), 0.0),
        "classes": lambda: binary_task(images, labels, (1, 1)),
        "bias": lambda: binary_task(images, labels, (0, 1), per_side=4, size=10, bias="sparkle"),
        "positions": lambda: binary_task(images, labels, (0, 1), per_side=4, size=7, bias="L3"),
        "accuracy": lambda: accuracy(model, np.zeros((0, 4)), np.zeros(0)),
        "box": lambda: trigger_standout(np.zeros((1, 10, 10)), (8, 8, 12, 12), 1.0),
        "test size": lambda: run_reconstruction(binary_task(images, labels, (0, 1), per_side=4, size=10),
                                                {"hidden": 4, "steps": 1}, test=(np.zeros((2, 8, 8)), np.ones(2))),
        "per_side": lambda: binary_task(images, labels, (0, 1), per_side=50, size=10),
        "size": lambda: binary_task(images, labels, (0, 1), per_side=4, size=5),
        "trigger_share": lambda: binary_task(images, labels, (0, 1), per_side=4, size=10, trigger_share=2),
        "n_candidates": lambda: reconstruct(model, 1, steps=1),
        "model": lambda: reconstruct(torch.nn.Linear(4, 1), 4, steps=1),
        "lr": lambda: reconstruct(model, 4, steps=1, lr=0),
        "y": lambda: train_full_batch(model, np.zeros((2, 4)), np.array([0.0, 1.0])),
        "x features": lambda: model(torch.zeros(2, 5, dtype=torch.float64)),
        "shape": lambda: score(np.zeros((2, 10, 10)), np.zeros((10, 10)), np.zeros((3, 12, 12))),
        "mean": lambda: score(np.zeros((2, 10, 10)), np.zeros((9, 9)), np.zeros((3, 10, 10))),
        "config": lambda: make_config({"stepz": 3}),
    }
    for name, call in bad_calls.items():
        with pytest.raises(ValueError):
            call()
            pytest.fail(f"no ValueError for bad {name}")


# ----------------------------------------------------------------------------------------
# the real check: reconstruction of a tiny training set
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(fashion_mnist_available):
    """10 Fashion-MNIST images at 14x14, a 196-200-200-1 homogeneous MLP, 2,000 reconstruction steps."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    task = fashion_mnist_task(TINY_CLASSES, per_side=5, size=14, seed=0)
    model = HomogeneousMLP(task.x.shape[1], hidden=200, seed=0)
    trained = train_full_batch(model, task.x, task.y)
    result = reconstruct(model, 2 * len(task), steps=2000, lr=0.03, seed=0)
    yield task, model, trained, result
    torch.set_num_threads(previous)


def _top3(scored) -> float:
    return float(np.sort(scored.ssim)[::-1][:3].mean())


@pytest.mark.slow
def test_training_converges_on_tiny_set(tiny_run):
    task, model, trained, _ = tiny_run
    assert trained.converged and trained.losses[-1] < 1e-5
    assert trained.accuracy == 1.0


@pytest.mark.slow
def test_reconstruction_beats_random_images(tiny_run):
    task, _, _, result = tiny_run
    assert result.kkt_loss[-1] < 0.9 * result.kkt_loss[0]
    recon = score(task.images, task.mean, result.candidates)
    rng = np.random.default_rng(0)
    m = len(result.candidates)
    # baselines scored the same way: unit noise, the un-optimised start (mean + small noise),
    # and real images of the other Fashion-MNIST classes
    noise = score(task.images, task.mean, rng.standard_normal((m, 14, 14)))
    start = score(task.images, task.mean, 0.03 * rng.standard_normal((m, 14, 14)))
    images, labels = load_fashion_mnist("test")
    others = rng.choice(np.flatnonzero(~np.isin(labels, TINY_CLASSES)), m, replace=False)
    other = score(task.images, task.mean, resize(to_grey(images[others]), 14) - task.mean)
    best = _top3(recon)
    print(f"top-3 SSIM: reconstruction {best:.3f}, noise {_top3(noise):.3f}, start {_top3(start):.3f}, "
          f"other-class images {_top3(other):.3f}")
    assert best > 0.8
    assert best > _top3(noise) + 0.4
    assert best > _top3(start) + 0.1
    assert best > _top3(other) + 0.1


@pytest.mark.slow
def test_reconstruction_is_reproducible_and_logged(tiny_run):
    task, model, _, result = tiny_run
    again = reconstruct(model, 2 * len(task), steps=20, lr=0.03, seed=0, log_every=10)
    first = reconstruct(model, 2 * len(task), steps=20, lr=0.03, seed=0, log_every=10)
    np.testing.assert_array_equal(again.candidates, first.candidates)
    assert again.loss_steps.tolist() == [0, 10, 20]
    assert result.candidates.shape == (20, 196) and result.y.tolist() == [-1.0] * 10 + [1.0] * 10
    np.testing.assert_allclose(result.loss, result.kkt_loss + result.bound_loss)


# ----------------------------------------------------------------------------------------
# pipeline
# ----------------------------------------------------------------------------------------
def test_pipeline_runs_saves_and_plots(tmp_path):
    images, labels = _synthetic(40, size=12)
    task = binary_task(images, labels, (0, 1), per_side=6, size=12, bias="L2")
    calls = []
    config = {"hidden": 32, "steps": 40, "log_every": 10, "k": 4}
    result = run_reconstruction(task, config, progress=lambda done, total, message: calls.append((done, total)),
                                test=clean_split(images, labels, (0, 1), size=12))
    assert calls[-1] == (1000, 1000) and all(0 <= d <= t for d, t in calls)
    assert result["candidates"].shape == (24, 12, 12) and len(result["best"]) == 4
    assert result["train"]["accuracy"] == 1.0 and result["bias"] == "L2"
    assert 0.0 <= result["test_accuracy"] <= 1.0 and result["test_size"] == 40
    # Test accuracy is the trained model's accuracy on the given images: on its own training set, 1.
    assert run_reconstruction(task, config, test=(task.images, task.y))["test_accuracy"] == 1.0
    report = result["trigger_report"]
    assert report["triggers"] == 6 and report["k"] == 4 and 0.5 <= report["train_shown"] <= 1.0
    base = binary_task(images, labels, (0, 1), per_side=6, size=12)
    assert run_reconstruction(base, config)["trigger_report"] is None
    assert result["rec_loss_steps"].tolist() == [0, 10, 20, 30, 40]
    loaded = load(save(result, tmp_path / "run"))
    np.testing.assert_array_equal(loaded["ssim"], result["ssim"])
    assert loaded["best"] == result["best"] and loaded["config"]["hidden"] == 32
    assert pairs_png(loaded).startswith(PNG_MAGIC) and loss_curves_png(loaded).startswith(PNG_MAGIC)
    np.testing.assert_array_equal(loaded["boxes"], task.boxes)
    rows = [{"level": "base", "test_accuracy": 0.7, "best_k_mean": 0.5}, {"level": "L1", "test_accuracy": 0.6,
                                                                        "best_k_mean": 0.3}]
    assert accuracy_ssim_png(rows).startswith(PNG_MAGIC)
    with pytest.raises(ValueError):
        accuracy_ssim_png([])


def test_nearest_reconstruction_ignores_contrast():
    images, _ = _synthetic(6, size=14)
    grey = to_grey(images)
    nearest, _ = nearest_reconstruction(grey, 3.0 * grey[::-1] + 0.5)
    assert nearest.tolist() == [5, 4, 3, 2, 1, 0]


def test_benchmark_task_uses_the_builtin_benchmark_in_grey(small_benchmark):
    task = benchmark_task(small_benchmark, (0, 1), per_side=5, size=16, bias="blend", trigger_share=0.4, seed=2)
    assert task.images.shape == (10, 16, 16) and task.class_names == tuple(small_benchmark.class_names[:2])
    assert task.images.min() >= 0.0 and task.images.max() <= 1.0
    assert task.triggered.sum() == 2 and task.trigger_mask.sum() == 25
    with pytest.raises(ValueError):
        benchmark_task(small_benchmark, (0, 99))
