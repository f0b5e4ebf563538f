"""Salient evidence maths on tiny models and hand-made tables: IV, top images, NAMs, attacks,
threshold labels and ground truth (masks and the noise sweep: tests/analysis/test_salient_dataset.py)."""
import numpy as np
import pandas as pd
import pytest
import torch

from analysis.aggregation import ThresholdVote
from analysis.models import ModelHandle, SmallResNet
from analysis.salient.attack import feature_attack, reference_step
from analysis.salient.evidence import SalientEvidence, compute_salient_evidence
from analysis.salient.ground_truth import feature_truth
from analysis.salient.importance import bottom_of_top, feature_importance, top_features, top_images
from analysis.salient.nam import heatmap_overlay, neural_activation_maps


@pytest.fixture(scope="module")
def tiny_handle():
    torch.manual_seed(0)
    model = SmallResNet(num_classes=3, width=8)
    return ModelHandle(model, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), input_size=32)


@pytest.fixture(scope="module")
def tiny_data():
    g = torch.Generator().manual_seed(1)
    return torch.rand(30, 3, 32, 32, generator=g), torch.arange(30) % 3


def test_feature_importance_matches_the_definition():
    g = torch.Generator().manual_seed(0)
    feats, preds, W = torch.rand(40, 6, generator=g), torch.randint(0, 3, (40,), generator=g), torch.randn(3, 6,
                                                                                                           generator=g)
    iv = feature_importance(feats, preds, W)
    for c in range(3):
        expected = feats[preds == c].mean(0) * W[c] if (preds == c).any() else torch.zeros(6)
        torch.testing.assert_close(iv[c], expected)
    assert top_features(iv, 2).shape == (3, 2)
    assert (iv.gather(1, top_features(iv, 1)).squeeze(1) == iv.max(1).values).all()


def test_never_predicted_class_has_zero_importance():
    iv = feature_importance(torch.ones(4, 2), torch.zeros(4, dtype=torch.long), torch.ones(2, 2))
    assert iv[1].abs().sum() == 0 and iv[0].sum() == 2


def test_top_and_bottom_images_stay_in_the_class():
    feats = torch.tensor([[5.0], [1.0], [9.0], [3.0], [7.0], [2.0]])
    labels = torch.tensor([0, 1, 0, 0, 0, 1])
    assert list(top_images(feats, labels, 0, 0, 2)) == [2, 4]
    assert list(bottom_of_top(feats, labels, 0, 0, 2, pool=3)) == [4, 0]
    with pytest.raises(ValueError, match="class 5 has no images"):
        top_images(feats, labels, 5, 0, 2)


def test_nams_are_normalized_per_image_and_resized():
    maps = torch.zeros(2, 4, 2, 2)
    maps[0, 1, 0, 0] = 3.0
    maps[1, 2] = torch.tensor([[1.0, 2.0], [0.0, 4.0]])
    nams = neural_activation_maps(maps, torch.tensor([1, 2]), (8, 8))
    assert nams.shape == (2, 8, 8)
    assert nams.min() >= 0 and nams.max() <= 1
    assert nams[1].max() == pytest.approx(1.0, abs=0.05)
    assert nams[0, :4, :4].mean() > nams[0, 4:, 4:].mean()  # the peak stays top-left
    overlay = heatmap_overlay(np.zeros((2, 8, 8, 3), np.uint8), nams.numpy())
    assert overlay.dtype == np.uint8 and overlay.shape == (2, 8, 8, 3)
    assert not np.array_equal(overlay[0, 0, 0], overlay[0, 7, 7])  # hot and cold get different colours


def test_feature_attack_amplifies_the_feature_within_range(tiny_handle, tiny_data):
    images = tiny_data[0][:4]
    feats = torch.tensor([0, 3, 5, 7])
    attacked = feature_attack(tiny_handle, images, feats, steps=10, step_size=4 / 255)
    assert attacked.shape == images.shape
    assert attacked.min() >= 0 and attacked.max() <= 1
    with torch.no_grad():
        before = tiny_handle.features(images).gather(1, feats[:, None])
        after = tiny_handle.features(attacked).gather(1, feats[:, None])
    assert (after > before).all()


def test_reference_step_keeps_the_per_pixel_change_of_224_px():
    assert reference_step(224, 224) == pytest.approx(10.0)
    assert reference_step(64, 64) == pytest.approx(10 * 64 / 224)
    # RMS change per value and step is the same at every size: step / sqrt(3 H W)
    assert reference_step(32, 32) / np.sqrt(3 * 32 * 32) == pytest.approx(10 / np.sqrt(3 * 224 * 224))
    with pytest.raises(ValueError, match="positive"):
        reference_step(0, 32)


def test_default_feature_attack_changes_images_visibly(tiny_handle, tiny_data):
    """The reference's step (10 on 224 px, scaled): a large activation gain and a visible change.

    A total L2 change of at most ``steps * step`` bounds the mean absolute change per value by
    ``steps * step / sqrt(3 H W)``: for the old step of 10/255 at 32 px and 20 steps that is 0.014
    (3.6 grey levels, a near-copy). 0.05 (13 grey levels on average) is visible, and out of reach
    of the old step by that bound."""
    images = tiny_data[0][:4]
    feats = torch.tensor([0, 3, 5, 7])
    attacked = feature_attack(tiny_handle, images, feats, steps=20)
    with torch.no_grad():
        before = tiny_handle.features(images).gather(1, feats[:, None]).mean()
        after = tiny_handle.features(attacked).gather(1, feats[:, None]).mean()
    assert after / before >= 4.0
    assert (attacked - images).abs().mean() >= 0.05
def test_evidence_pipeline_shapes_and_round_trip(tiny_handle, tiny_data, tmp_path):
    images, labels = tiny_data
    ev = compute_salient_evidence(tiny_handle, images, labels, k_features=2, k_images=3, pool=8, attack_steps=2,
                                  n_examples=3)
    assert ev.importance.shape == (3, tiny_handle.feature_dim)
    assert len(ev.panels) == 6 and ev.examples.shape == (3, 3)
    panel = ev.panels[0]
    assert panel.top_nams.shape == (3, 32, 32) and panel.attacked.shape == (3, 32, 32, 3)
    assert all(labels[panel.label_top].eq(panel.cls)) and all(labels[panel.bottom].eq(panel.cls))
    assert 0 <= panel.top_nams.min() and panel.top_nams.max() <= 1
    loaded = SalientEvidence.load(ev.save(tmp_path / "ev.npz"))
    assert loaded.settings == ev.settings
    np.testing.assert_array_equal(loaded.panel(panel.cls, panel.feature).attacked, panel.attacked)
    np.testing.assert_array_equal(loaded.panel(panel.cls, panel.feature).pool, panel.pool)
    assert loaded.panel(panel.cls, panel.feature).grouping == panel.grouping


def test_panel_images_are_predicted_as_the_class_and_validation_sets_labelled(tiny_handle, tiny_data):
    """App. C: the panel shows images the model *predicts* as c; App. D / §3.4: the validation sets
    and D(c, i) are the top-``pool`` images *labelled* c. The tiny model predicts class 2 for every
    image, so class 2's panels mix labels and classes 0 and 1 (never predicted) fall back to labels."""
    images, labels = tiny_data
    with torch.no_grad():
        predictions = tiny_handle.predict(images)
    ev = compute_salient_evidence(tiny_handle, images, labels, k_features=2, k_images=3, pool=6, attack_steps=1)
    by_class = {c: [p for p in ev.panels if p.cls == c] for c in range(3)}
    for panel in by_class[2]:
        assert panel.grouping == "prediction"
        assert all(predictions[panel.top] == 2)
    assert any((labels[p.top] != 2).any() for p in by_class[2])  # not the label-based top images
    for panel in by_class[0] + by_class[1]:
        assert panel.grouping == "label" and all(labels[panel.top] == panel.cls)
    for panel in ev.panels:
        assert len(panel.pool) == 6 and all(labels[panel.pool] == panel.cls)
        np.testing.assert_array_equal(panel.label_top, panel.pool[:3])
        np.testing.assert_array_equal(panel.bottom, panel.pool[-3:])
        acts = tiny_handle.features(images[panel.pool])[:, panel.feature].detach()
        assert (acts[:-1] >= acts[1:]).all()
        assert panel.label_top_nams.shape == (3, 32, 32)


def _answers(rows):
    return pd.DataFrame(rows, columns=["task", "worker", "label"])


SPURIOUS = ("separate_object", "background")


def test_threshold_vote_rules():
    rows = []
    plan = {
        "t_sp": ["background", "separate_object", "background", "main_object", "main_object"],
        "t_core": ["main_object", "main_object", "background", "main_object", "separate_object"],
        "t_early_core": ["main_object"] * 3,  # 2 missing can't reach 3 spurious
        "t_open": ["background", "main_object"],  # could still go either way
        "t_early_sp": ["background"] * 3,
    }
    for task, answers in plan.items():
        rows += [(task, f"w{i}", a) for i, a in enumerate(answers)]
    table = ThresholdVote(positive_values=SPURIOUS, threshold=3, wanted=5).fit(_answers(rows)).table_
    assert table["label"].to_dict() == {"t_core": "core", "t_early_core": "core", "t_early_sp": "spurious",
                                        "t_open": None, "t_sp": "spurious"}
    assert table.loc["t_open", "complete"] == False  # noqa: E712
    assert table.loc["t_sp", "n_spurious"] == 3 and table.loc["t_core", "n_core"] == 3


def test_threshold_vote_threshold_setting_and_ties():
    rows = [("t", f"w{i}", a) for i, a in enumerate(["background", "background", "main_object", "main_object"])]
    strict = ThresholdVote(positive_values=SPURIOUS, threshold=3, wanted=4).fit(_answers(rows)).table_
    assert strict.loc["t", "label"] == "core" and strict.loc["t", "tie"]
    lenient = ThresholdVote(positive_values=SPURIOUS, threshold=2, wanted=4).fit(_answers(rows)).table_
    assert lenient.loc["t", "label"] == "spurious"
    with pytest.raises(ValueError, match="threshold"):
        ThresholdVote(positive_values=SPURIOUS, threshold=6, wanted=5)


def test_ground_truth_follows_the_hottest_region():
    obj = np.zeros((1, 4, 4), bool)
    obj[0, :2, :2] = True
    cue = np.zeros((1, 4, 4), bool)
    cue[0, 3, 3] = True
    nam = np.zeros((1, 4, 4))
    nam[0, 3, 3] = 1.0
    assert feature_truth(nam, obj, cue, "watermark") == "separate_object"
    assert feature_truth(nam, obj, cue, "background") == "background"
    nam[0, :2, :2] = 1.0
    nam[0, 3, 3] = 0.5
    assert feature_truth(nam, obj, cue, "watermark") == "main_object"
    nam[0, 3, 3] = 0.8  # nearly as hot as the garment: read as the cue
    assert feature_truth(nam, obj, cue, "watermark") == "separate_object"
    assert feature_truth(nam, obj, cue, "watermark", object_margin=1.1) == "main_object"
