"""Misclassification agreement (Stock & Cisse §3.1-3.2): aggregation on hand-made answer tables, the paper's
arithmetic, confidence intervals, and the evidence (I-FGSM, LIME) on a toy model."""
import numpy as np
import pandas as pd
import pytest
import torch

from analysis.misclassification.aggregation import (
    encode_ranks,
    rectified_error,
    rectified_error_table,
    rectify,
    wilson_interval,
    yes_histogram,
    yes_ranks,
)


def table(rows):
    return pd.DataFrame([{"task": t, "worker": w, "label": lab} for t, w, lab in rows])


def yes_answers(task, n_yes, n=5):
    return [(task, f"w{i}", "yes" if i < n_yes else "no") for i in range(n)]


def test_rectified_when_four_of_five_say_yes():
    rows = yes_answers(1, 5) + yes_answers(2, 4) + yes_answers(3, 3) + yes_answers(4, 0)
    t = rectify(table(rows), threshold=4, wanted=5)
    assert t["label"].to_dict() == {1: "rectified", 2: "rectified", 3: "not_rectified", 4: "not_rectified"}
    assert t["yes_count"].to_dict() == {1: 5, 2: 4, 3: 3, 4: 0}
    assert t["count_no"].to_dict() == {1: 0, 2: 1, 3: 2, 4: 5}
    # the threshold is a setting
    assert rectify(table(rows), threshold=3, wanted=5).loc[3, "label"] == "rectified"


def test_incomplete_task_is_labelled_only_when_settled():
    t = rectify(table(yes_answers(1, 3, n=3) + yes_answers(2, 0, n=2) + yes_answers(3, 4, n=4)), threshold=4, wanted=5)
    assert t.loc[1, "label"] is None  # 3 yes, 2 missing: could still reach 4
    assert t.loc[2, "label"] == "not_rectified"  # 0 yes + 3 missing < 4
    assert t.loc[3, "label"] == "rectified"
    assert not t.loc[1, "complete"]


def test_top5_answers_count_yes_per_class_not_per_worker():
    # every worker says yes to some class, but no single class gets 4 yes: not rectified
    spread = [(1, "w0", "1"), (1, "w1", "2"), (1, "w2", "3"), (1, "w3", "1+2"), (1, "w4", "none")]
    # class 2 gets 4 yes across workers: rectified
    agree = [(2, "w0", "2"), (2, "w1", "1+2"), (2, "w2", "2+5"), (2, "w3", "2"), (2, "w4", "none")]
    t = rectify(table(spread + agree), threshold=4, wanted=5)
    assert t.loc[1, "label"] == "not_rectified" and t.loc[1, "yes_count"] == 2
    assert t.loc[2, "label"] == "rectified" and t.loc[2, "yes_count"] == 4
    assert yes_ranks("1+3") == {1, 3} and yes_ranks("none") == frozenset() and yes_ranks("yes") == {1}
    assert encode_ranks([3, 1]) == "1+3" and encode_ranks([]) == "none"
    with pytest.raises(ValueError, match="neither"):
        yes_ranks("maybe")


@pytest.mark.parametrize("model, error, rectified", [
    ("ResNet-18", 31.39, 17.93), ("ResNet-101", 22.69, 9.47), ("DenseNet-121", 25.53, 14.37),
    ("DenseNet-161", 22.85, 10.87),
])
def test_paper_table_1_arithmetic(model, error, rectified):
    # ImageNet validation: 50,000 images; the errors and the rectified ones the paper's figures imply
    n_errors = round(error / 100 * 50_000)
    n_rectified = n_errors - round(rectified / 100 * 50_000)
    plain, rect = rectified_error(50_000, n_errors, n_errors, n_rectified)
    assert round(100 * plain, 2) == error and round(100 * rect, 2) == rectified


def test_rectified_error_table_from_per_image_yes_counts():
    # 20 test images, 5 mistakes judged with yes-counts 5, 4, 3, 1, 0 -> 2 rectified: 25 % -> 15 %
    yes = [5, 4, 3, 1, 0]
    answers = table([row for i, n in enumerate(yes) for row in yes_answers(i, n)])
    labels = rectify(answers, threshold=4, wanted=5)
    images = pd.DataFrame({"model": "m", "variant": "top1", "n_images": 20, "n_errors": 5,
                           "rectified": (labels["label"] == "rectified").to_numpy(), "yes_count": labels["yes_count"]})
    row = rectified_error_table(images).iloc[0]
    assert (row["error_percent"], row["rectified_error_percent"], row["rectified_images"]) == (25.0, 15.0, 2)
    # a sample of the mistakes: the rectified share is applied to all of them (10 errors, 5 judged)
    row = rectified_error_table(images.assign(n_errors=10)).iloc[0]
    assert (row["error_percent"], row["rectified_error_percent"]) == (50.0, 30.0)
    hist = yes_histogram(images)
    assert hist["images"].tolist() == [1, 1, 0, 1, 1, 1] and hist["percent"].sum() == 100


def test_rectified_error_table_gives_wilson_intervals_the_number_judged_and_the_split():
    # 100 images, 20 errors, 5 judged with 2 rectified: the share 40 % [11.76, 76.93] (Wilson, 2 of 5)
    images = pd.DataFrame({"model": "m", "variant": "top1", "split": "flipped", "n_images": 100, "n_errors": 20,
                           "rectified": [True, True, False, False, False]})
    row = rectified_error_table(images).iloc[0]
    assert (row["split"], row["judged"], row["rectified_images"]) == ("flipped", 5, 2)
    assert row["rectified_share_percent"] == 40
    low, high = wilson_interval(2, 5)
    assert (row["rectified_share_ci_low_percent"], row["rectified_share_ci_high_percent"]) == (
        round(100 * low, 2), round(100 * high, 2))
    assert row["rectified_error_percent"] == 12.0
    assert (row["rectified_error_ci_low_percent"], row["rectified_error_ci_high_percent"]) == (
        round(20 * (1 - high), 2), round(20 * (1 - low), 2))
    assert row["error_ci_low_percent"] < 20 < row["error_ci_high_percent"]
    # the whole error set judged narrows the interval: 200 of 200 errors, 80 rectified
    full = rectified_error_table(pd.DataFrame({"model": "m", "variant": "top1", "split": "test", "n_images": 1000,
                                               "n_errors": 200, "rectified": [i < 80 for i in range(200)]})).iloc[0]
    assert full["rectified_error_percent"] == 12.0
    assert full["rectified_error_ci_high_percent"] - full["rectified_error_ci_low_percent"] < 3
    with pytest.raises(ValueError, match="6 judged mistakes of 5 errors"):
        rectified_error_table(images.iloc[[0, 0, 0, 0, 0, 0]].assign(n_errors=5))


def test_wilson_intervals():
    low, high = wilson_interval(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)  # the textbook Wilson interval of 5/10
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)


class Toy(torch.nn.Module):
    """Class 1 when the mean of the red channel is above 0.5: easy to flip with small steps."""

    def forward(self, x):
        m = x[:, 0].mean(dim=(1, 2))
        return torch.stack([0.5 - m, m - 0.5], dim=1) * 50


class ToyHandle:
    device = torch.device("cpu")

    def logits(self, x):
        return Toy()(x)


def test_iterative_fgsm_stops_at_the_first_flip_and_caps_steps():
    from analysis.misclassification.evidence import iterative_fgsm, predict_topk

    x = torch.stack([torch.full((3, 8, 8), v) for v in (0.503, 0.5075, 0.6, 0.2)])
    y = torch.tensor([1, 1, 1, 1])  # the last is wrong from the start and not attacked
    result = iterative_fgsm(ToyHandle(), x, y, step=0.001, max_steps=10)
    assert result.steps.tolist() == [4, 8, 10, 0]  # flips when the mean drops below 0.5; the third never does
    assert result.flipped.tolist() == [True, True, False, False]
    assert result.correct.tolist() == [True, True, True, False]
    assert result.predictions.tolist() == [0, 0, 1, 0]
    assert torch.allclose(result.images[0, 0], x[0, 0] - 0.004, atol=1e-6)  # 4 signed steps of 0.001
    assert torch.equal(result.images[0, 1:], x[0, 1:])  # no gradient, no change
    assert predict_topk(ToyHandle(), x, 2)[:, 0].tolist() == [1, 1, 1, 0]


def test_lime_keeps_top_superpixels_and_hides_the_rest():
    from analysis.misclassification.evidence import lime_explain

    image = np.zeros((32, 32, 3), np.uint8)
    image[:, 16:, 0] = 255  # the right half is what class 1 looks at
    image[:, :16, 2] = 200
    # two superpixels; hidden ones black (a superpixel's mean, LIME's default, is the superpixel itself here)
    e = lime_explain(ToyHandle(), image, 1, num_samples=60, segment_size=None, hide_color=0)
    assert e.image.shape == image.shape and e.image.dtype == np.uint8 and e.n_segments == 2
    assert e.mask[:, 16:].all() and not e.mask[:, :16].any() and not e.image[~e.mask].any()
    assert (e.image[e.mask] == image[e.mask]).all()


def adversarial_images(n_images, n_correct, n_flipped, rectified_whole, rectified_explanation, judged,
                       clean=(9, 10)):
    totals = {"n_images": n_images, "n_correct": n_correct, "n_flipped": n_flipped}
    rows = []
    for condition, k in (("whole", rectified_whole), ("explanation", rectified_explanation)):
        rows += [{"condition": condition, "rectified": i < k, **totals,
                  "yes_count": 5 if i < k else 1, "n_answers": 5} for i in range(judged)]
    rows += [{"condition": "clean", "rectified": i < clean[0], **totals,
              "yes_count": 5, "n_answers": 5} for i in range(clean[1])]
    return pd.DataFrame(rows)


def test_adversarial_rectified_error_from_the_papers_inputs():
    """Stock & Cisse §3.2: accuracy 77.31 % -> 7.96 % under I-FGSM; the turkers agree with 22.01 %
    (whole) / 30.80 % (explanation) of the adversarial predictions; Table 2 prints 92.04 -> 76.78 / 70.68."""
    from analysis.misclassification.aggregation import adversarial_rectified_error

    for share, printed in ((0.2201, 76.78), (0.3080, 70.68)):
        error, rectified = adversarial_rectified_error(0.7731, 0.0796, share)
        assert (round(100 * error, 2), round(100 * rectified, 2)) == (92.04, printed)
    with pytest.raises(ValueError, match="after .* <= before"):
        adversarial_rectified_error(0.0796, 0.7731, 0.2201)


def test_adversarial_table_reproduces_the_papers_table_2():
    # 100,000 images, 77,310 correct before the attack and 7,960 after (69,350 flipped); a sample of
    # 10,000 flipped images judged, 2,201 / 3,080 rectified -> 92.04 -> 76.78 / 70.68
    from analysis.misclassification.aggregation import adversarial_table

    t = adversarial_table(adversarial_images(100_000, 77_310, 69_350, 2_201, 3_080, 10_000)).set_index("condition")
    for c in ("whole", "explanation"):
        assert (t.loc[c, "accuracy_before_percent"], t.loc[c, "accuracy_after_percent"]) == (77.31, 7.96)
        assert t.loc[c, "top1_error_percent"] == 92.04 and t.loc[c, "flipped"] == 69_350
    assert (t.loc["whole", "rectified_share_percent"], t.loc["explanation", "rectified_share_percent"]) == (22.01, 30.8)
    assert t.loc["whole", "rectified_error_percent"] == 76.78
    assert t.loc["explanation", "rectified_error_percent"] == 70.68
    assert list(t.index) == ["whole", "explanation", "clean"]  # the control is an extra row
    assert t.loc["clean", "rectified_share_percent"] == 90.0 and pd.isna(t.loc["clean", "top1_error_percent"])
    for c in ("whole", "explanation"):
        assert t.loc[c, "rectified_error_ci_low_percent"] < t.loc[c, "rectified_error_percent"] \
            < t.loc[c, "rectified_error_ci_high_percent"]
        assert t.loc[c, "top1_error_ci_low_percent"] < 92.04 < t.loc[c, "top1_error_ci_high_percent"]


def test_adversarial_table_counts_the_images_already_wrong_as_errors():
    # 50 images, 40 correct before the attack, 30 of those flipped: 20 errors after (40 %); 20 judged, 4 rectified
    from analysis.misclassification.aggregation import adversarial_table

    small = adversarial_table(adversarial_images(50, 40, 30, 4, 6, 20)).set_index("condition")
    assert small.loc["whole", "top1_error_percent"] == 80.0  # 10 wrong before + 30 flipped of 50
    assert small.loc["whole", "rectified_error_percent"] == round(100 * (40 / 50 - 30 / 50 * 4 / 20), 2)
    width = small.loc["whole", "rectified_error_ci_high_percent"] - small.loc["whole", "rectified_error_ci_low_percent"]
    assert 10 < width < 40  # 20 judged images: a wide interval
    assert small.loc["whole", "yes_answer_percent"] == round(100 * (4 * 5 + 16 * 1) / 100, 2)
    with pytest.raises(ValueError, match="flipped only 10"):
        adversarial_table(adversarial_images(50, 40, 10, 4, 6, 20))
    with pytest.raises(ValueError, match="flipped <= correct"):
        adversarial_table(adversarial_images(50, 40, 45, 4, 6, 20))
    # evidence without the attack's totals (computed before they were recorded): shares only, no errors
    old = adversarial_table(adversarial_images(50, 40, 30, 4, 6, 20).drop(columns=["n_correct", "n_flipped"]))
    assert old["top1_error_percent"].isna().all() and old.loc[0, "rectified_share_percent"] == 20.0


def topk_images(protocol, rectified, in_topk, n_images=1000, n_errors=None, n_topk=None):
    return pd.DataFrame({"model": "m", "protocol": protocol, "rectified": rectified, "truth_in_topk": in_topk,
                         "n_images": n_images, "n_errors": n_errors or len(rectified), "n_topk_errors": n_topk})


def test_rectified_topk_error_under_both_protocols():
    from analysis.misclassification.aggregation import rectified_topk_table

    # (a) 10 top-1 mistakes of 100 images, 4 of them with the truth in the top k; 3 others rectified -> 3 left
    a = topk_images("top1_mistakes", [True, False, False, True, True, True, False, False, False, True],
                    [True, True, True, True, False, False, False, False, False, False], n_images=100, n_topk=6)
    # (b) 6 top-k mistakes of 100 images, all judged, 2 rectified -> 4 % ; a sample of 3 of 6 with 1 rectified
    b = topk_images("topk_mistakes", [True, True, False, False, False, False], [False] * 6, n_images=100, n_topk=6)
    t = rectified_topk_table(pd.concat([a, b])).set_index("protocol")
    assert t.loc["top1_mistakes", "topk_error_percent"] == 6.0
    assert t.loc["top1_mistakes", "rectified_topk_error_percent"] == 3.0
    assert t.loc["topk_mistakes", "rectified_topk_error_percent"] == 4.0
    sample = topk_images("topk_mistakes", [True, False, False], [False] * 3, n_images=100, n_errors=6, n_topk=6)
    row = rectified_topk_table(sample).iloc[0]
    low, high = wilson_interval(2, 3)  # 2 of the 3 judged mistakes stay wrong; 6 % of the images are mistakes
    assert (row["rectified_topk_error_percent"], row["rectified_topk_error_ci_low_percent"],
            row["rectified_topk_error_ci_high_percent"]) == (4.0, round(6 * low, 2), round(6 * high, 2))
    with pytest.raises(ValueError, match="cannot have its truth in the top k"):
        rectified_topk_table(topk_images("topk_mistakes", [False], [True], n_topk=1))
    with pytest.raises(ValueError, match="unknown top-k protocol"):
        rectified_topk_table(topk_images("top3", [False], [False], n_topk=1))


@pytest.mark.parametrize("protocol, topk_error, rectified, base", [
    ("top1_mistakes", 6.44, 1.94, 22.69), ("topk_mistakes", 6.44, 1.37, 6.44)])
def test_paper_top5_arithmetic(protocol, topk_error, rectified, base):
    """ResNet-101 on 50,000 images: the top-5 error and the rectified one of each protocol."""
    from analysis.misclassification.aggregation import rectified_topk_table

    n_errors, n_topk, left = round(base * 500), round(topk_error * 500), round(rectified * 500)
    in_topk = [i < n_errors - n_topk for i in range(n_errors)]  # top-1 mistakes with the truth in the top 5
    wrong = set(range(n_errors - n_topk, n_errors - n_topk + left))
    images = topk_images(protocol, [i not in wrong and not in_topk[i] for i in range(n_errors)], in_topk,
                         n_images=50_000, n_topk=n_topk)
    row = rectified_topk_table(images).iloc[0]
    assert (row["topk_error_percent"], row["rectified_topk_error_percent"]) == (topk_error, rectified)


def _share_of_8_largest(segments):
    return np.sort(np.bincount(segments.ravel()))[::-1][:8].sum() / segments.size


def _photo_224(name):
    """A photo bundled with scikit-image, centre-cropped and resized to 224 px as the paper's ImageNet crops."""
    from skimage import data
    from skimage.transform import resize

    image = getattr(data, name)()
    h, w = image.shape[:2]
    side = min(h, w)
    crop = image[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
    return (resize(crop, (224, 224), order=1, anti_aliasing=True) * 255).round().astype(np.uint8)


@pytest.mark.parametrize("name", ["astronaut", "chelsea"])
def test_quickshift_splits_a_224px_photo_into_tens_of_superpixels(name):
    """LIME's quickshift settings (kernel 4, max_dist 200, ratio 0.2) on a 224 px photo give tens of
    superpixels (Stock & Cisse Fig. 5/6 show ~10-50), so the top 8 show a part of it. Segmented on a
    0-255 float image (rgb2lab expects [0, 1]) the same photos gave 318 and 130."""
    from analysis.misclassification.evidence import quickshift_segments

    image = _photo_224(name)
    segments = quickshift_segments(image)
    assert 20 <= segments.max() + 1 <= 60, segments.max() + 1
    assert np.array_equal(segments, quickshift_segments(image.astype(np.float64) / 255))  # uint8 or [0, 1]: same
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        quickshift_segments(image.astype(np.float64))


@pytest.mark.parametrize("size", [32, 64])
def test_lime_superpixels_of_a_benchmark_image_as_many_as_on_a_224px_crop(fashion_mnist_available, size):
    """The benchmark's 32 and 64 px images segmented at their own size give 1-6 superpixels (the top 8
    show all of the image); segmented as at 224 px they get tens, as an ImageNet crop, and the top 8
    can show at most half."""
    from analysis.datasets import BenchmarkConfig, generate_benchmark
    from analysis.misclassification.evidence import quickshift_segments

    bench = generate_benchmark(BenchmarkConfig(seed=7, classes=(0, 2, 4, 6, 8), train_per_class=1, test_per_class=1,
                                               image_size=size, garment_size=size // 2), show_progress=False)
    images = bench.split("test").images
    at_224 = [quickshift_segments(im) for im in images]
    own_size = [quickshift_segments(im, segment_size=None) for im in images]
    assert all(20 <= s.max() + 1 <= 60 for s in at_224), [s.max() + 1 for s in at_224]
    assert max(_share_of_8_largest(s) for s in at_224) <= 0.5
    assert all(_share_of_8_largest(s) == 1.0 for s in own_size)  # why the default segments at 224 px


def test_lime_explanation_shows_only_its_superpixels_on_a_small_image():
    from analysis.misclassification.evidence import lime_explain

    rng = np.random.default_rng(0)
    image = np.repeat(np.repeat(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), 8, 0), 8, 1)  # 32 px, 16 blocks
    e = lime_explain(ToyHandle(), image, 1, num_samples=60, hide_color=0)
    assert e.segments.shape == (32, 32) and e.n_segments > 8 and e.mask.any()
    assert e.mask.mean() <= 0.5 and not e.image[~e.mask].any()


class Recording(ToyHandle):
    """The toy model, keeping every batch LIME asks it to classify."""

    def __init__(self):
        self.batches = []

    def logits(self, x):
        self.batches.append(x.numpy().copy())
        return super().logits(x)


@pytest.mark.parametrize("hide_color", [None, 0.0])
def test_lime_hides_superpixels_with_their_mean_by_default(hide_color):
    """LimeImageExplainer.explain_instance's default hide_color=None: a switched-off superpixel shows its
    mean colour; hide_color=0 shows black. Each perturbed sample LIME classifies is checked pixel by pixel."""
    from analysis.misclassification.evidence import lime_explain

    rng = np.random.default_rng(1)
    image = (rng.random((32, 32, 3)) * 0.6 + 0.2)  # textured, no black pixel; float in [0, 1]
    handle = Recording()
    e = lime_explain(handle, image, 1, num_samples=20, hide_color=hide_color, batch_size=10)
    samples = np.concatenate(handle.batches).transpose(0, 2, 3, 1)
    assert len(samples) == 20 and np.allclose(samples[0], image)  # LIME's first sample is the image itself
    means = np.stack([image[e.segments == s].mean(0) for s in range(e.n_segments)])
    fill = means[e.segments] if hide_color is None else np.zeros_like(image)
    for sample in samples[1:]:
        kept = np.isclose(sample, image, atol=1e-6).all(-1)
        assert not kept.all()  # some superpixel switched off
        assert np.allclose(sample[~kept], fill[~kept], atol=1e-6)
    assert (samples.min() > 0.1) == (hide_color is None)
    with pytest.raises(ValueError, match="hide_color"):
        lime_explain(handle, image, 1, num_samples=20, hide_color=255)
