"""bench/validity.py: its table and count from crafted per-effect results, one cheap effect's arithmetic on a
small benchmark with a scripted model, and (slow) a whole seed of cheap effects on a tiny trained profile."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from bench.validity import columns, format_table, read_csv, run_seed, write_csv
from bench.validity_effects import EFFECTS, Outcome, rectified_share


def test_the_table_counts_the_effects_found_over_the_cells_that_ran(tmp_path):
    cols = columns(["prototypes", "spray"])  # table order, whatever the order asked
    assert cols == ["spray_rank", "spray_purity", "prototypes"]
    rows = {0: {"spray_rank": Outcome(True, "rank 1"), "spray_purity": Outcome(False, "0.76 k=4 n=90"),
                "prototypes": Outcome(True, "adv 10%<90%")},
            3: {"spray_rank": Outcome(True, "rank 2"), "spray_purity": Outcome(True, "0.97 k=3 n=80")}}
    text = format_table(rows, cols)
    lines = text.splitlines()
    assert lines[0].split() == ["seed", *cols]
    assert lines[2].startswith("0 ") and "no (0.76 k=4 n=90)" in lines[2]
    assert lines[3].startswith("3 ") and lines[3].rstrip().endswith("-")  # not run on seed 3
    assert lines[-2].split() == ["found", "2", "of", "2", "1", "of", "2", "1", "of", "1"]
    assert lines[-1] == "planted effects found: 4 of 5"
    write_csv(tmp_path / "t.csv", rows, cols)
    read = list(csv.DictReader((tmp_path / "t.csv").open()))
    assert [r["spray_purity"] for r in read] == ["0", "1"] and read[1]["prototypes"] == ""
    assert read[0]["spray_purity_detail"] == "0.76 k=4 n=90"
    write_csv(tmp_path / "u.csv", {3: {"prototypes": Outcome(False, "adv 50%<40%")}}, ["prototypes"])
    merged, merged_cols = read_csv([tmp_path / "t.csv", tmp_path / "u.csv"])
    assert merged_cols == cols and merged[3]["prototypes"] == Outcome(False, "adv 50%<40%")
    assert format_table(merged, merged_cols).splitlines()[-1] == "planted effects found: 4 of 6"


class ScriptedModel:
    """Predicts, for each image of a split, the class scripted for it (images matched exactly)."""

    def __init__(self, images: torch.Tensor, predicted: np.ndarray, num_classes: int) -> None:
        self.keys = {img.numpy().tobytes(): int(p) for img, p in zip(images, predicted)}
        self.num_classes = num_classes

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(images), self.num_classes)
        for i, img in enumerate(images):
            out[i, self.keys[img.numpy().tobytes()]] = 1.0
        return out


def test_the_crowd_rectifies_mistakes_toward_a_planted_cue_not_plain_confusions(small_benchmark):
    bench = small_benchmark
    label_of_kind = {b.kind: b.label for b in bench.biases}
    from analysis.datasets.benchmark import BIAS_KINDS

    shares = {}
    for name in ("flipped", "test"):
        split = bench.split(name)
        images, labels = split.tensors()
        kinds = np.asarray(split.bias_kinds)
        # a cue-carrying image is taken for the cue's class; the others for the next class (a plain confusion)
        predicted = np.where(kinds >= 0, [label_of_kind[BIAS_KINDS[k]] if k >= 0 else 0 for k in kinds],
                             (labels.numpy() + 1) % bench.num_classes)
        shares[name] = rectified_share(bench, ScriptedModel(images, predicted, bench.num_classes), name, seed=0)
    (flip, n_flip), (clean, n_clean) = shares["flipped"], shares["test"]
    assert n_flip > 30 and n_clean > 30
    # 5 workers 85 % right, >= 4 yes: a true "yes" is rectified with p = 0.84, a true "no" with p < 0.01
    assert flip > 0.6 and clean < 0.1


TINY = {"benchmark": {"classes": (0, 2, 4, 6, 8), "train_per_class": 40, "test_per_class": 20, "image_size": 32,
                      "garment_size": 16},
        "training": {"standard": {"width": 4, "epochs": 1}, "robust": {"width": 4, "epochs": 1, "eps": 0.25,
                                                                       "robust_eval_images": 20}}}


@pytest.mark.slow
def test_one_seed_of_the_cheap_effects_on_a_tiny_profile(tmp_path, monkeypatch, fashion_mnist_available):
    from bench import validity_effects

    monkeypatch.setattr(validity_effects, "QUICK", {**validity_effects.QUICK, **TINY})
    row = run_seed(1, ["misclassification", "prototypes", "salient"], tmp_path, log=lambda line: None,
                   flavours=("standard",))
    assert set(row) == {"misclass_sta", "prototypes"}  # no robust model: no Salient, no robust cell
    assert not any(o.detail.startswith("error") for o in row.values()), row
    assert len(list((tmp_path / "models").glob("demo-standard-*.pt"))) == 1
    assert set(EFFECTS) >= {"misclassification", "prototypes"}


def test_a_missing_dataset_stops_the_run_instead_of_counting_misses(tmp_path, monkeypatch):
    from analysis.datasets import fashion_mnist

    monkeypatch.setenv(fashion_mnist.ENVIRONMENT_VARIABLE, str(tmp_path / "nowhere"))
    with pytest.raises(fashion_mnist.FashionMNISTNotFoundError):
        run_seed(0, ["prototypes"], tmp_path, log=lambda line: None, flavours=("standard",))


def test_the_run_names_the_cpu_kernels_its_figures_come_from(tmp_path, monkeypatch, capsys):
    from analysis.datasets import fashion_mnist
    from bench.validity import machine_kernels, main

    kernels = machine_kernels()
    assert kernels.endswith(f"torch CPU capability {torch.backends.cpu.get_cpu_capability()}")
    assert not kernels.startswith(",")
    monkeypatch.setenv(fashion_mnist.ENVIRONMENT_VARIABLE, str(tmp_path / "nowhere"))
    with pytest.raises(fashion_mnist.FashionMNISTNotFoundError):
        main(["--seeds", "0", "--effects", "prototypes", "--flavours", "standard", "--work", str(tmp_path)])
    assert capsys.readouterr().out.splitlines()[0] == f"kernels: {kernels}"


class _PlantedOnly:
    """Seed inputs with the benchmark only: SpRAy (``spray``) must not be needed for the planted artifact."""

    def __init__(self, bench) -> None:
        self.spray_demo, self.unhans_artifact = (bench, None), "planted"


def test_the_planted_artifact_is_the_watermark_itself_without_spray(small_benchmark):
    from analysis.datasets.benchmark import BIAS_KINDS
    from bench.validity_effects import SeedInputs, unhans_artifact

    bench = small_benchmark
    mask, patch, iou = unhans_artifact(_PlantedOnly(bench))
    train = bench.split("train")
    cls = bench.biased_labels()["watermark"]
    marked = (np.asarray(train.bias_kinds) == BIAS_KINDS.index("watermark")) & (np.asarray(train.labels) == cls)
    assert marked.sum() > 5 and iou == 1.0
    assert np.array_equal(mask, train.bias_masks[marked].mean(axis=0) > 0.5) and 4 < mask.sum() < mask.size // 4
    images = train.tensors(np.flatnonzero(marked))[0]
    assert torch.allclose(patch[:, mask], images.median(dim=0).values[:, mask])
    assert torch.all(patch[:, ~mask] == 0)
    with pytest.raises(ValueError, match="at least one image"):
        train.cue_mask([])
    with pytest.raises(ValueError, match="unhans_artifact must be one of"):
        SeedInputs(0, ".", unhans_artifact="oracle")


def test_the_command_line_hands_the_artifact_choice_to_every_seed(tmp_path, monkeypatch, capsys):
    import bench.validity as validity

    seen = []
    monkeypatch.setattr(validity, "run_seed", lambda seed, effects, work, log, flavours, unhans_artifact:
                        seen.append(unhans_artifact) or {"unhans_free": Outcome(True, "B-A +0.010")})
    validity.main(["--seeds", "0", "1", "--effects", "unhans", "--unhans-artifact", "planted", "--work",
                   str(tmp_path)])
    assert seen == ["planted", "planted"]
    assert "un-Hans artifact: the planted watermark" in capsys.readouterr().out
    seen.clear()
    validity.main(["--seeds", "0", "--effects", "unhans", "--work", str(tmp_path)])
    assert seen == ["spray"]
