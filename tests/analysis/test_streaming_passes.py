"""Streamed, sharded passes give what the in-memory computations give, on the tiny benchmark and a random demo
ResNet."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis.misclassification.evidence import misclassified, predict_topk
from analysis.prototypes.adversarial import bim_flip_steps
from analysis.salient.evidence import compute_salient_evidence
from analysis.salient.importance import collect_features
from analysis.spray.dataset import spray_classes, spray_maps
from analysis.spray.lrp import relevance
from analysis.spray.pipeline import spray_class
from analysis.streaming import Execution, PassSpec, run_pass, salient_evidence
from tests.analysis.streaming_fixtures import NUM_CLASSES, assert_same_topk, tiny_data, tiny_model  # noqa: F401

SETTINGS = {"k_features": 3, "k_images": 4, "pool": 12, "attack_steps": 2, "attack_step_size": 0.05}


def test_salient_evidence_streamed_in_three_shards_equals_in_memory(tiny_data, tiny_model):
    source, images, labels = tiny_data
    model, handle = tiny_model
    expected = compute_salient_evidence(handle, images, labels, batch_size=32, **SETTINGS)
    done = []
    streamed = salient_evidence(model, source, n_shards=3, execution=Execution(batch_size=32),
                                progress=lambda d, t, m: done.append((d, t)), **SETTINGS)

    predicted = np.bincount(handle.predict(images).numpy(), minlength=NUM_CLASSES)
    assert (predicted > 0).sum() >= 2, "the random model should predict more than one class"
    np.testing.assert_allclose(streamed.importance, expected.importance, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(streamed.top_features, expected.top_features)
    np.testing.assert_array_equal(streamed.examples, expected.examples)
    assert [(p.cls, p.feature, p.rank) for p in streamed.panels] == [(p.cls, p.feature,
                                                                      p.rank) for p in expected.panels]
    for ours, theirs in zip(streamed.panels, expected.panels):
        np.testing.assert_array_equal(ours.top, theirs.top)
        np.testing.assert_array_equal(ours.bottom, theirs.bottom)
        np.testing.assert_array_equal(ours.pool, theirs.pool)
        np.testing.assert_array_equal(ours.label_top, theirs.label_top)
        np.testing.assert_allclose(ours.label_top_nams, theirs.label_top_nams, atol=1e-5)
        assert ours.grouping == theirs.grouping
        np.testing.assert_allclose(ours.top_nams, theirs.top_nams, atol=1e-5)
        np.testing.assert_allclose(ours.bottom_nams, theirs.bottom_nams, atol=1e-5)
        assert np.abs(ours.attacked.astype(int) - theirs.attacked.astype(int)).max() <= 1
    assert (len(images), len(images)) in done  # the features pass reported all images, summed over shards


def test_panel_images_by_prediction_are_the_top_of_the_predicted_images(tiny_data, tiny_model):
    source, images, _ = tiny_data
    model, handle = tiny_model
    stats = run_pass(PassSpec(kind="salient", model=model, data=source, params={"pool": 6}), 2,
                     execution=Execution(batch_size=32, num_workers=1))
    features, predictions = collect_features(handle, images, batch_size=32)
    checked = 0
    for cls in range(NUM_CLASSES):
        members = torch.nonzero(predictions == cls).flatten()
        for feature in stats.top_features(2)[cls]:
            order = members[features[members, feature].argsort(descending=True)][:6]
            np.testing.assert_array_equal(stats.top_images(cls, int(feature), 6, by="prediction"), order.numpy())
            checked += len(order)
    assert checked > 0
    np.testing.assert_array_equal(stats.predicted_counts, np.bincount(predictions.numpy(), minlength=NUM_CLASSES))


def test_predictions_pass_equals_predict_topk(tiny_data, tiny_model):
    source, images, labels = tiny_data
    model, handle = tiny_model
    result = run_pass(PassSpec(kind="predictions", model=model, data=source, params={"k": 3}), 3,
                      execution=Execution(batch_size=48))
    expected = predict_topk(handle, images, 3)
    np.testing.assert_array_equal(result.indices, np.arange(len(images)))
    np.testing.assert_array_equal(result.topk, expected)
    np.testing.assert_array_equal(result.misclassified(1), misclassified(expected, labels.numpy(), 1))


def test_prototype_features_pass_equals_in_memory_features_probs_and_flips(tiny_data, tiny_model):
    source, images, labels = tiny_data
    model, handle = tiny_model
    pool = np.sort(np.random.default_rng(0).choice(len(images), 40, replace=False))
    spec = PassSpec(kind="prototype_features", model=model, data=source, indices=pool,
                    params={"attack_steps": 2, "attack_eps": 0.01})
    result = run_pass(spec, 2, execution=Execution(batch_size=16))
    x, y = images[pool], labels[pool]
    with torch.no_grad():
        features = handle.features(x).numpy()
        probs = torch.softmax(handle.logits(x).double(), 1).gather(1, y[:, None])[:, 0].numpy()
    flips = bim_flip_steps(handle, x, y, max_steps=2, eps=0.01)
    np.testing.assert_array_equal(result.indices, pool)
    np.testing.assert_allclose(result.features, features, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.probs, probs, rtol=1e-6)
    np.testing.assert_array_equal(result.flips.steps, flips.steps)


def test_lrp_pass_keeps_the_downsampled_heatmaps_spray_uses(tiny_data, tiny_model):
    source, images, labels = tiny_data
    model, handle = tiny_model
    idx = np.flatnonzero(labels.numpy() == 1)[:24]
    result = run_pass(PassSpec(kind="lrp", model=model, data=source, indices=idx, params={"size": 8}), 2,
                      execution=Execution(batch_size=8))
    full = relevance(handle, images[idx], labels[idx]).sum(dim=1).numpy()
    assert result.heatmaps.shape == (24, 8, 8)
    pooled = full.reshape(24, 8, 4, 8, 4).mean(axis=(2, 4))  # 32 px -> 8 x 8 blocks
    np.testing.assert_allclose(result.heatmaps, pooled, rtol=1e-4, atol=1e-6 * np.abs(pooled).max())
    ours = spray_class(result.heatmaps, size=8, n_neighbors=5, n_eigval=8, ks=[2, 3], agglomerative=False, umap=False)
    theirs = spray_class(full, size=8, n_neighbors=5, n_eigval=8, ks=[2, 3], agglomerative=False, umap=False)
    np.testing.assert_allclose(ours.eigenvalues, theirs.eigenvalues, atol=1e-6)


def test_spray_on_the_sharded_lrp_pass_equals_spray_in_memory(tiny_data, tiny_model):
    source, images, labels = tiny_data
    model, handle = tiny_model
    spec = PassSpec(kind="lrp", model=model, data=source, params={"size": 8, "full": True})
    result = run_pass(spec, 3, execution=Execution(batch_size=16))
    options = {"size": 8, "n_neighbors": 5, "ks": [2, 3, 4], "umap": False, "agglomerative": False}
    ours = spray_maps(result.heatmaps, result.labels, **options)
    theirs = spray_classes(handle, images, labels, **options)

    assert [c for c, _ in ours.ranking] == [c for c, _ in theirs.ranking]
    np.testing.assert_allclose([t for _, t in ours.ranking], [t for _, t in theirs.ranking], rtol=1e-5)
    for cls in range(NUM_CLASSES):
        np.testing.assert_array_equal(result.indices[ours[cls].indices], theirs[cls].indices)
        np.testing.assert_allclose(result.relevance[ours[cls].indices], theirs[cls].relevance, rtol=1e-5,
                                   atol=1e-6 * np.abs(theirs[cls].relevance).max())
        for k in options["ks"]:
            np.testing.assert_array_equal(ours[cls].result.labels[k], theirs[cls].result.labels[k])


@pytest.mark.parametrize("kind,params", [("salient", {"pool": 5}), ("predictions", {"k": 2}), ("lrp", {"size": 4})],
                         ids=["salient", "predictions", "lrp"])
def test_one_or_three_shards_give_identical_results(tiny_data, tiny_model, kind, params):
    source, images, labels = tiny_data
    model, _ = tiny_model
    indices = None if kind != "lrp" else np.arange(0, len(images), 5)
    spec = PassSpec(kind=kind, model=model, data=source, params=params, indices=indices)
    one = run_pass(spec, 1, execution=Execution(batch_size=16))
    three = run_pass(spec, 3, execution=Execution(batch_size=16))
    if kind == "salient":
        np.testing.assert_allclose(one.importance, three.importance, rtol=1e-12)
        np.testing.assert_array_equal(one.top_features(3), three.top_features(3))
        assert_same_topk(one.by_prediction, three.by_prediction)
        assert_same_topk(one.by_label, three.by_label)
    else:
        for field in ("indices", "labels", "topk" if kind == "predictions" else "heatmaps"):
            np.testing.assert_array_equal(getattr(one, field), getattr(three, field))


def test_a_second_pass_on_the_chosen_features_keeps_the_same_images_in_less_memory(tiny_data, tiny_model):
    source, _, _ = tiny_data
    model, _ = tiny_model
    full = run_pass(PassSpec(kind="salient", model=model, data=source, params={"pool": 6}), 2,
                    execution=Execution(batch_size=64))
    chosen = full.top_features(2)
    narrow = run_pass(PassSpec(kind="salient", model=model, data=source,
                               params={"pool": 6, "features": {c: chosen[c].tolist() for c in range(NUM_CLASSES)}}),
                      3, execution=Execution(batch_size=64))
    for cls in range(NUM_CLASSES):
        for feature in chosen[cls]:
            for by in ("prediction", "label"):
                np.testing.assert_array_equal(narrow.top_images(cls, int(feature), 6, by),
                                              full.top_images(cls, int(feature), 6, by))
    assert narrow.by_label.nbytes * 16 <= full.by_label.nbytes  # 2 of 64 features kept
    with pytest.raises(KeyError, match="was not tracked"):
        narrow.top_images(0, int(next(f for f in range(64) if f not in chosen[0])), 3, "label")


def test_amp_runs_forward_passes_in_reduced_precision(tiny_data, tiny_model):
    source, _, _ = tiny_data
    model, _ = tiny_model
    indices = np.arange(64)
    exact, mixed = (run_pass(PassSpec(kind="prototype_features", model=model, data=source, indices=indices, amp=amp),
                             1, execution=Execution(batch_size=32)) for amp in (False, True))
    assert not np.array_equal(exact.features, mixed.features)  # bfloat16 on the CPU, float16 on CUDA
    scale = np.abs(exact.features).max()
    np.testing.assert_allclose(mixed.features, exact.features, atol=0.05 * scale)


def test_panels_spec_round_trips_and_refuses_partials_of_other_panels(tiny_data, tiny_model, tmp_path):
    """The panels fan-out travels as JSON (a Celery argument) with the same digest; its shards cover the jobs."""
    from analysis.streaming import DirectoryShardStore, PanelsSpec, panel_jobs, run_work, work_from_dict

    source, _, _ = tiny_data
    model, _ = tiny_model
    spec = PassSpec(kind="salient", model=model, data=source, params={"pool": 6})
    jobs = panel_jobs(run_pass(spec, 1, execution=Execution(batch_size=32)), k_features=2, k_images=2, pool=6)
    panels = PanelsSpec(source=spec, jobs=jobs, attack_steps=1, attack_step_size=0.05)
    again = work_from_dict(panels.to_dict())
    assert again == panels and again.digest() == panels.digest() and isinstance(work_from_dict(spec.to_dict()),
                                                                                PassSpec)
    store = DirectoryShardStore(tmp_path)
    partials = run_work(panels, 3, execution=Execution(batch_size=32), store=store)
    assert [(p.start, p.stop) for p in partials] == [(s.start, s.stop) for s in panels.plan(3, Execution())]
    assert len(list(tmp_path.rglob("*.npz"))) == 3 and partials[-1].stop == len(jobs)
    other = PanelsSpec(source=spec, jobs=jobs, attack_steps=2, attack_step_size=0.05)
    with pytest.raises(ValueError, match="belong to other panels"):
        other.result(partials)
    with pytest.raises(ValueError, match="do not cover all"):
        panels.result(partials[:-1])
