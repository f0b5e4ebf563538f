"""SpRAy on the demo model: the planted watermark must come out (issue 8's acceptance check, issue 27).

The model is the *standard* model of the built-in benchmark in SpRAy's variant
(:data:`analysis.spray.benchmark_variant.SPRAY_BENCHMARK`: the planted cues on 30 % of their
class's images, so the watermark is a minority strategy as in the SpRAy papers) at 32 px
(:data:`BENCHMARK`: 1,000 train images per class as the full demo, the quick demo's image size) with
the standard model's default training (width 32, 5 epochs), built and trained here in a temporary
directory (~1.5 min on 2 idle cores, a quarter of the full demo's 64 px model; nothing is read from
or written to the checkout's ``var/``). SpRAy runs with its defaults (the paper's space: k-means and
tau on the row-normalised spectral embedding; full-resolution maps) on every train image of every
class (1,000 each). The planted truth: Coat (class 4) carries a watermark on ~30 % of its train images.

* the watermark class must be among the 3 classes with the highest tau;
* a cluster of the Coat heatmaps must be dominated by watermark images: over the k-means clusterings
  of k = 2..10 (:data:`analysis.spray.dataset.DISPLAY_KS`, the ks a researcher browses), the purest
  cluster of at least 10 images is (almost) all watermark images, and the ~70 % of Coat images
  without the watermark are found too -- some cluster of at least 10 images is (almost) only made
  of them. The purity at the k of the largest eigengap (:func:`analysis.spray.dataset.display_k`,
  the k the crowd's tasks show) is printed, not asserted: whether the eigengap picks a k that
  isolates the watermark varies with the trained weights, which vary with the CPU's kernels
  (this model: k = 8, purity 1.00 on an AMD EPYC with AVX2; k = 2, purity 0.34 on an Intel Xeon
  with AVX-512, where k = 6 holds a 176-image cluster of watermark images only). The validity
  bench (``bench/validity.py``, column ``spray_purity``) measures it per seed;
* the artifact tests on the purest watermark cluster: its relevance mask covers the planted watermark, pasting
  it pulls other classes' test images towards Coat, inpainting it away pushes Coat's own
  watermarked test images off Coat.
"""
from __future__ import annotations

import pytest

# The module fixture trains a model and runs SpRAy on 10,000 maps (~2.5 min on 2 idle cores, longer beside the
# other xdist worker of `make test`).
pytestmark = pytest.mark.timeout(1800)

PER_CLASS = None  # all 1,000 train images per class
MIN_SIZE = 10
#: SpRAy's variant at the quick demo's 32 px with the full demo's 1,000 train images per class. The quick demo's
#: model (600 per class, width 16, 6 epochs) finds the cluster but does not lean on the watermark (pasting it
#: moves P(Coat) by 0.002 on seed 0), nor does the 600-per-class benchmark with width 32; the full demo's 64 px
#: model passes too, in 9 minutes instead of 2.5 (the README, "The suite's time").
BENCHMARK = {"image_size": 32, "garment_size": 16}


@pytest.fixture(scope="module")
def demo_spray(tmp_path_factory):
    from analysis.salient.benchmark_inputs import benchmark_inputs
    from analysis.spray.benchmark_variant import SPRAY_BENCHMARK
    from analysis.spray.dataset import spray_classes

    work = tmp_path_factory.mktemp("spray-demo-model")
    bench, handles, _ = benchmark_inputs(work, benchmark={**SPRAY_BENCHMARK, **BENCHMARK}, flavours=("standard",))
    images, labels = bench.split("train").tensors()
    spray = spray_classes(handles["standard"], images, labels, per_class=PER_CLASS, umap=False,
                          agglomerative=False)
    return bench, handles["standard"], spray


def _watermark(bench, spray):
    from analysis.datasets.benchmark import BIAS_KINDS

    cls = bench.biased_labels()["watermark"]
    entry = spray[cls]
    flags = bench.split("train").bias_kinds[entry.indices] == BIAS_KINDS.index("watermark")
    return cls, entry, flags


@pytest.mark.slow
def test_watermark_class_ranks_in_the_top_3_by_tau(demo_spray):
    bench, _, spray = demo_spray
    cls, _, _ = _watermark(bench, spray)
    print("tau ranking:", ", ".join(f"{bench.class_names[c]} {t:.2f}" for c, t in spray.ranking))
    assert spray.rank_of(cls) <= 3, f"{bench.class_names[cls]} ranks {spray.rank_of(cls)} by tau"


@pytest.mark.slow
def test_a_cluster_is_dominated_by_watermark_images(demo_spray):
    from analysis.spray.dataset import best_cluster, cluster_purity, display_k

    bench, _, spray = demo_spray
    _, entry, flags = _watermark(bench, spray)
    base = float(flags.mean())
    k = display_k(entry.result)
    _, eigengap_purity, eigengap_size = cluster_purity(entry.result.labels[k], flags, min_size=MIN_SIZE)
    best_k, cluster, purity, size = best_cluster(entry.result, flags, min_size=MIN_SIZE)
    clean_k, _, clean_purity, clean_size = best_cluster(entry.result, ~flags, min_size=MIN_SIZE)
    print(f"Coat: {len(flags)} images, watermark base rate {base:.3f}; purest watermark cluster: {size} images at "
          f"k={best_k}, purity {purity:.3f}; at k={k} (largest eigengap, not asserted): {eigengap_purity:.3f} of "
          f"{eigengap_size}; images without the watermark: {clean_purity:.3f} of a {clean_size}-image cluster at "
          f"k={clean_k} (base {1 - base:.3f})")
    assert 0.2 < base < 0.4
    assert purity >= 0.95 and size >= MIN_SIZE
    assert clean_purity >= 0.95


@pytest.mark.slow
def test_watermark_artifact_found_pasted_and_removed(demo_spray):
    """The mask of the watermark cluster covers the planted watermark; pasting it pulls other classes'
    test images towards Coat, removing it (inpainting) pushes Coat's own watermarked images away."""
    from analysis.datasets.benchmark import BIAS_KINDS
    from analysis.spray.artifacts import artifact_mask, artifact_patch, artifact_tests
    from analysis.spray.dataset import best_cluster

    bench, handle, spray = demo_spray
    cls, entry, flags = _watermark(bench, spray)
    k, cluster, _, _ = best_cluster(entry.result, flags, min_size=MIN_SIZE)
    members = entry.result.labels[k] == cluster
    mask = artifact_mask(entry.relevance[members])
    train = bench.split("train")
    truth = train.cue_mask(entry.indices[members & flags])
    iou = (mask & truth).sum() / (mask | truth).sum()
    patch = artifact_patch(train.tensors(entry.indices[members])[0], mask)

    test = bench.split("test")
    images, _ = test.tensors()
    carriers = (test.labels == cls) & (test.bias_kinds == BIAS_KINDS.index("watermark"))
    result = artifact_tests(handle, images, test.labels, cls, mask, patch, affected=carriers, max_images=200)
    paste, remove = result["paste"], result["remove"]
    print(f"mask {int(mask.sum())} px, IoU with the planted watermark {iou:.2f}; paste: P(Coat) "
          f"{paste['prob_before']:.3f} -> {paste['prob_after']:.3f}, rank {paste['rank_before']:.2f} -> "
          f"{paste['rank_after']:.2f}; remove: P(Coat) {remove['prob_before']:.3f} -> {remove['prob_after']:.3f}, "
          f"rank {remove['rank_before']:.2f} -> {remove['rank_after']:.2f}")
    assert iou >= 0.5
    # positive: toward Coat. One config trains bit-identical weights on one machine, not across machines (CPU
    # kernels; see TrainConfig.threads). The 64 px model of before: P(Coat) rose by >= 0.3 on the machines before
    # 2026-12-07, by 0.280 and 0.550 on two of that day's. This 32 px model on 2026-12-07: 0.320 (rank 2.74) trained
    # with 2 threads, 0.275 (rank 2.90) with 1; on an Intel Xeon with AVX-512, 0.581 (rank 1.72). The bounds are
    # those of the 64 px model.
    assert paste["delta_prob"] > 0.25 and paste["delta_rank"] > 2
    assert paste["predicted_after"] > 0.3 > paste["predicted_before"]
    # The model also uses the coat itself (70 % of coats carry no watermark): removal lowers P(Coat) a lot
    # and pushes it off the top for part of the images.
    assert remove["delta_prob"] < -0.3 and remove["delta_rank"] < -0.3
