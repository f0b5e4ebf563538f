"""Checks of a feature-panel study's Fig. 4 statistics, App. F reasons, App. L σ* drops and reference-layout
export, recomputed independently from its other files (shared by the benchmark and own-data tests)."""
from __future__ import annotations

import ast
import csv
import io
import re
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from PIL import Image
from torchvision import transforms

from tests.analysis.test_salient_findings import ReferenceSalientImageNet
from tests.study_helpers import read_csv


def check_statistics(files: dict[str, bytes]) -> list[dict]:
    """Fig. 4 (b–d) against the labels of ``feature_labels.csv``; returns the decided labels."""
    decided = [r for r in read_csv(files["feature_labels.csv"]) if r["label"] in ("core", "spurious")]
    assert decided
    by_rank = {int(r["rank"]): r for r in read_csv(files["spurious_by_rank.csv"])}
    assert set(by_rank) == {int(r["rank"]) for r in decided}
    for rank, row in by_rank.items():
        at_rank = [r for r in decided if int(r["rank"]) == rank]
        assert int(row["labelled"]) == len(at_rank)
        assert int(row["spurious"]) == sum(r["label"] == "spurious" for r in at_rank)
    classes = {int(r["class"]) for r in decided}
    spurious = Counter(int(r["class"]) for r in decided if r["label"] == "spurious")
    most = max(Counter(int(r["class"]) for r in decided).values())
    histogram = {int(r["spurious_features"]): int(r["classes"]) for r in read_csv(files["spurious_histogram.csv"])}
    assert histogram == {n: sum(spurious.get(c, 0) == n for c in classes) for n in range(most + 1)}
    owners = defaultdict(set)
    for r in decided:
        if r["label"] == "spurious":
            owners[int(r["feature"])].add(int(r["class"]))
    shared = {int(r["feature"]): {int(c) for c in r["classes"].split("; ")}
              for r in read_csv(files["shared_spurious_features.csv"])}
    assert shared == {f: cs for f, cs in owners.items() if len(cs) > 1}
    matrix = read_csv(files["shared_spurious_matrix.csv"])
    assert sum(int(v) for row in matrix for k, v in row.items() if k != "class") == sum(
        len(cs) * (len(cs) - 1) for cs in shared.values())
    return decided


def check_reasons(files: dict[str, bytes], counted_answers: int) -> None:
    """Every counted answer's reason is listed; each top word's count is its occurrences in its answer's reasons."""
    reasons = read_csv(files["worker_reasons.csv"])
    assert len(reasons) == counted_answers and all(r["reason"] for r in reasons)
    words = read_csv(files["reason_words.csv"])
    assert words
    for w in words:
        texts = [r["reason"].lower() for r in reasons if r["answer"] == w["answer"]]
        assert int(w["count"]) == sum(len(re.findall(rf"\b{re.escape(w['word'])}\b", t)) for t in texts), w
        assert w["word"] not in {"the", "is", "on", "a", "of"}


def check_matched(files: dict[str, bytes]) -> list[dict]:
    """App. L: per (model, class) a core and a spurious feature at one σ* ≥ 0.25; the lower feature's mean
    perturbation at σ* reaches the other's at σ = 0.25 (or σ* is the largest σ searched)."""
    rows = read_csv(files["matched_perturbation.csv"])
    pairs = defaultdict(list)
    for r in rows:
        pairs[(r["model"], r["class"])].append(r)
    for pair in pairs.values():
        assert sorted(r["label"] for r in pair) == ["core", "spurious"]
        assert len({r["sigma_star"] for r in pair}) == 1 and float(pair[0]["sigma_star"]) >= 0.25
        low = [r for r in pair if r["lower"] == "True"]
        assert len(low) == 1
        other = next(r for r in pair if r is not low[0])
        assert float(low[0]["mean_perturbation"]) <= float(other["mean_perturbation"])
        if pair[0]["matched"] == "True":
            assert float(low[0]["mean_perturbation_at_sigma_star"]) >= float(other["mean_perturbation"])
        else:
            assert float(pair[0]["sigma_star"]) == 1.0
    return rows


def check_reference_layout(files: dict[str, bytes], tmp_path: Path) -> int:
    """The reference class reads ``salient_imagenet_layout.zip``: its images and combined masks equal those of
    ``salient_dataset.zip`` (same images, the max of the per-feature NAMs); returns the images read."""
    root = tmp_path / "layout"
    zipfile.ZipFile(io.BytesIO(files["salient_imagenet_layout.zip"])).extractall(root)
    ours = zipfile.ZipFile(io.BytesIO(files["salient_dataset.zip"]))
    index = {int(r["sample"]): r for r in csv.DictReader(io.StringIO(ours.read("index.csv").decode()))}
    feature_masks = defaultdict(dict)
    for r in csv.DictReader(io.StringIO(ours.read("feature_masks.csv").decode())):
        feature_masks[int(r["sample"])][int(r["feature"])] = r["mask"]
    wordnet = ast.literal_eval((root / "wordnet_dict.py").read_text())  # the reference eval()s this dict literal
    resize = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])

    def png(name: str) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(ours.read(name))))

    read = 0
    for cls in sorted({int(r["class"]) for r in index.values()}):
        folder = wordnet[cls]
        features = [int(c) for c in next(csv.reader(open(root / folder / "image_names_map.csv")))]
        dataset = ReferenceSalientImageNet(str(root), str(root), cls, features)
        samples = sorted(i for i, r in index.items() if int(r["class"]) == cls)
        assert sorted(int(name.rsplit("_", 1)[1]) for name in dataset.image_names) == samples
        for position, name in enumerate(dataset.image_names):
            sample = int(name.rsplit("_", 1)[1])
            image, mask = dataset[position]
            want = resize(Image.fromarray(png(index[sample]["image"])).convert("RGB").resize((224, 224),
                                                                                            Image.BILINEAR))
            assert float((image - want).abs().mean()) < 0.02, name
            combined = np.max([png(m) for m in feature_masks[sample].values()], axis=0)
            want_mask = resize(Image.fromarray(combined).resize((224, 224), Image.BILINEAR))
            assert float((mask - want_mask).abs().mean()) < 0.02, name
            read += 1
    assert read == len(index)
    return read
