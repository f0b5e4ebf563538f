"""Un-Hans (Anders et al. §3.3, Table 2) on the SpRAy demo model: time and accuracies at a chosen size.

Uses the quick demo's SpRAy benchmark variant and standard model (cached under ``--dir``, trained
there when missing). The artifact comes from SpRAy on the watermark class as the un-Hans job takes
it: LRP of ``--per-class`` train images, SpRAy (euclidean, 32x32), the purest watermark cluster
among k = 2..10, its mean-relevance mask and median patch. Subset A = the class and 4 others
(``--others random``: drawn as the paper, seeded; ``confusion``: the most confused),
``--train-per-class`` images each; B = A with the patch on every training image without the planted
watermark. Prints Table 2 (accuracy among A's classes on the clean validation images and with the
patch on every one), the relevance of the fixed sample's heatmaps on the artifact, and the wall and
CPU time of each part (CPU: this process's threads together). On a shared, loaded machine run it with
OMP_NUM_THREADS=1: two torch threads there took 30x the wall time (99 s against 2.2 s).

    .venv/bin/python bench/unhans.py --dir var/benchmark --epochs 2 --train-per-class 100
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis.datasets.benchmark import BIAS_KINDS  # noqa: E402
from analysis.salient.benchmark_inputs import benchmark_inputs  # noqa: E402
from analysis.spray.artifacts import artifact_mask, artifact_patch  # noqa: E402
from analysis.spray.benchmark_review import Pool  # noqa: E402
from analysis.spray.benchmark_variant import SPRAY_BENCHMARK  # noqa: E402
from analysis.spray.dataset import best_cluster, class_indices  # noqa: E402
from analysis.spray.lrp import relevance  # noqa: E402
from analysis.spray.pipeline import spray_class  # noqa: E402
from analysis.spray.unhans import (  # noqa: E402
    confusion_counts,
    heatmap_epochs,
    nearest_by_confusion,
    random_classes,
    unhans_table2,
)

#: The quick demo profile's benchmark and standard model (annotation/management/commands/demo.py, QUICK).
QUICK_BENCHMARK = {"train_per_class": 600, "test_per_class": 100, "image_size": 32, "garment_size": 16}
QUICK_TRAINING = {"standard": {"width": 16, "epochs": 6}}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=ROOT / "var" / "benchmark")
    parser.add_argument("--benchmark", type=json.loads, default=QUICK_BENCHMARK)
    parser.add_argument("--training", type=json.loads, default=QUICK_TRAINING)
    parser.add_argument("--per-class", type=int, default=300, help="heatmaps of the watermark class for SpRAy")
    parser.add_argument("--train-per-class", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--others", choices=("random", "confusion"), default="random")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    bench, handles, _ = benchmark_inputs(args.dir, benchmark={**args.benchmark, **SPRAY_BENCHMARK},
                                         training=args.training, flavours=("standard",))
    handle = handles["standard"]
    print(f"inputs {time.perf_counter() - start:.1f}s")
    cls = bench.biased_labels()["watermark"]
    train, val = bench.split("train"), bench.split("test")
    planted = np.asarray(train.bias_kinds) == BIAS_KINDS.index("watermark")

    clock, cpu = time.perf_counter(), time.process_time()
    idx = class_indices(train.labels, cls, args.per_class)
    images, labels = train.tensors(idx)
    maps = relevance(handle, images, labels).sum(dim=1).numpy()
    result = spray_class(maps, size=32, ks=range(2, 11), agglomerative=False, umap=False)
    k, cluster, purity, size = best_cluster(result, planted[idx])
    members = result.labels[k] == cluster
    mask = artifact_mask(maps[members])
    patch = artifact_patch(images[torch.from_numpy(np.flatnonzero(members))], mask)
    print(f"artifact: SpRAy cluster k={k} #{cluster}, {size} images, {purity:.0%} watermarked; mask "
          f"{int(mask.sum())} px ({time.perf_counter() - clock:.1f}s wall, {time.process_time() - cpu:.1f}s CPU)")

    clock, cpu = time.perf_counter(), time.process_time()
    if args.others == "confusion":
        val_x, val_y = val.tensors()
        classes = nearest_by_confusion(confusion_counts(handle, val_x, val_y), cls, 4)
    else:
        classes = random_classes(bench.num_classes, cls, 4, args.seed)
    train_pool, val_pool = Pool.of(bench, ["train"], classes, args.train_per_class), Pool.of(bench, ["test"], classes)
    tx, ty = train_pool.tensors(bench)
    vx, vy = val_pool.tensors(bench)
    val_planted = (np.asarray(val.bias_kinds) == BIAS_KINDS.index("watermark"))[val_pool.index]
    own = np.flatnonzero(vy.numpy() == cls)
    sample = int(own[val_planted[own]][0])
    report = unhans_table2(handle, tx, ty, vx, vy, cls, patch, mask, carries=planted[train_pool.index],
                           classes=classes, epochs=args.epochs, lr=args.lr, seed=args.seed,
                           snapshot_epochs=heatmap_epochs(args.epochs), sample=sample)
    seconds, cpu_seconds = time.perf_counter() - clock, time.process_time() - cpu
    print(f"A = {[bench.class_names[c] for c in classes]}: {report['train_images']} train images "
          f"({report['carriers']} watermarked), {report['val_images']} validation images, {args.epochs} epochs, "
          f"lr {args.lr}: {seconds:.1f}s wall, {cpu_seconds:.1f}s CPU ({torch.get_num_threads()} threads)")
    print(f"{'training':10s} {'clean val':>10s} {'val + artifact':>15s}")
    for row in report["table"]:
        print(f"{row['model']:10s} {row['clean_accuracy']:10.3f} {row['artifact_accuracy']:15.3f}")
    for name, per_epoch in report["heatmaps"].items():
        for epoch, rel in per_epoch.items():
            inside = float(rel[mask].sum())
            print(f"sample heatmap {name} epoch {epoch}: relevance on the artifact {inside:+.3f} "
                  f"of {float(np.abs(rel).sum()):.3f} (|R| total)")
    print(f"sample heatmap before: relevance on the artifact {float(report['sample_heatmap'][mask].sum()):+.3f}")


if __name__ == "__main__":
    main()
