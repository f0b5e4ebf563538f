"""SpRAy study settings (issue 18 item a) and which images carry a reviewed cluster's artifact (item b),
without a database: the settings form's GW options, clustering space, tau weighting and embedded split,
and the images the removal test and un-Hans' subset B treat as carriers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from annotation.task_kinds import get_task_kind
from annotation.task_kinds.cluster_review import GW_MAX_SIZE, SpraySettingsForm, gw_options
from annotation.task_kinds.spray_jobs import carriers, removal_set, task_members


@pytest.fixture
def defaults() -> dict:
    return get_task_kind("cluster_review").default_settings()


def test_defaults_are_the_papers_choices(defaults):
    assert {k: defaults[k] for k in ("embed_split", "metric", "gw_solver", "gw_epsilon", "gw_candidates",
                                     "gw_prune_above", "space", "weighted_tau", "preprocessing")} == {
        "embed_split": "train", "metric": "euclidean", "gw_solver": "emd", "gw_epsilon": 0.01, "gw_candidates": 20,
        "gw_prune_above": 300, "space": "embedding", "weighted_tau": False, "preprocessing": "full"}
    assert gw_options(defaults) is None  # euclidean distances take no GW options


def test_gw_options_from_the_form(defaults):
    form = SpraySettingsForm(data={**defaults, "metric": "gromov_wasserstein", "size": GW_MAX_SIZE,
                                   "preprocessing": "pooled", "gw_solver": "entropic", "gw_epsilon": 0.05,
                                   "gw_candidates": 12, "gw_prune_above": 40, "space": "embedding",
                                   "weighted_tau": True, "embed_split": "train+val"})
    assert form.is_valid(), form.errors
    conf = form.cleaned_data
    assert GW_MAX_SIZE == 16 and conf["size"] == 16  # a 16 × 16 grid is allowed now (it stopped at 12)
    assert gw_options(conf) == {"solver": "entropic", "epsilon": 0.05, "candidates": 12, "prune_above": 40}
    assert (conf["space"], conf["weighted_tau"], conf["embed_split"]) == ("embedding", True, "train+val")
    exact = gw_options({**conf, "gw_solver": "emd"})
    assert exact == {"solver": "emd", "candidates": 12, "prune_above": 40}  # epsilon belongs to the entropic solver


def test_a_form_without_the_new_fields_gets_their_defaults(defaults):
    """Clients that post the settings of before (the demo, scripts) keep working."""
    new = ("embed_split", "gw_solver", "gw_epsilon", "gw_candidates", "gw_prune_above", "space", "weighted_tau",
           "preprocessing")
    form = SpraySettingsForm(data={k: v for k, v in defaults.items() if k not in new})
    assert form.is_valid(), form.errors
    assert {k: form.cleaned_data[k] for k in new} == {k: defaults[k] for k in new}


@pytest.mark.parametrize("field, value", [
    ("size", GW_MAX_SIZE + 1), ("gw_solver", "sinkhorn"), ("gw_epsilon", 0), ("gw_candidates", 5),
    ("gw_prune_above", 2), ("space", "embedding64"), ("embed_split", "val"), ("preprocessing", "full"),
])
def test_bad_values_name_their_field(defaults, field, value):
    form = SpraySettingsForm(data={**defaults, "metric": "gromov_wasserstein", "size": 8, "preprocessing": "pooled",
                                   field: value})
    assert not form.is_valid()
    assert list(form.errors) == [field], form.errors


class Split:
    def __init__(self, labels, kinds) -> None:
        self.labels, self.bias_kinds = np.asarray(labels), np.asarray(kinds)

    def __len__(self) -> int:
        return len(self.labels)

    def tensors(self, indices=None):
        idx = np.arange(len(self)) if indices is None else np.asarray(indices)
        return torch.full((len(idx), 3, 4, 4), 0.5) + torch.from_numpy(idx)[:, None, None, None] / 100, \
            torch.from_numpy(self.labels[idx])


class Bias:
    kind, label = "watermark", 1


class Folder:
    """A registered folder: no masks, no planted cue."""

    has_masks, biases = False, ()

    def __init__(self) -> None:
        self.splits = {"train": Split([0, 1, 1, 0, 1], [-1] * 5), "test": Split([1, 0, 1], [-1] * 3)}

    def split(self, name):
        return self.splits[name]


class Benchmark(Folder):
    has_masks, biases = True, (Bias(),)

    def __init__(self) -> None:
        self.splits = {"train": Split([0, 1, 1, 0, 1], [-1, 1, -1, -1, 1]), "test": Split([1, 0, 1], [-1, -1, 1])}


def test_carriers_are_the_planted_cue_on_the_benchmark_else_the_cluster():
    members = task_members({"indices": [2, 4], "val_indices": [0]})
    assert {k: v.tolist() for k, v in members.items()} == {"train": [2, 4], "test": [0]}
    assert task_members({"indices": [3]})["test"].tolist() == []
    assert carriers(Benchmark(), 1, "train", members).tolist() == [False, True, False, False, True]
    assert carriers(Benchmark(), 1, "test", members).tolist() == [False, False, True]
    assert carriers(Folder(), 1, "train", members).tolist() == [False, False, True, False, True]
    assert carriers(Folder(), 1, "test", members).tolist() == [True, False, False]
    # A class without a planted cue on the benchmark: its cluster's images.
    assert carriers(Benchmark(), 0, "train", {"train": np.array([3])}).tolist() == [False, False, False, True, False]


def test_removal_set_holds_only_the_affected_validation_images_of_the_class():
    members = task_members({"indices": [2, 4]})
    bench = Benchmark()
    images, labels, affected, described = removal_set(bench, 1, members)
    # Benchmark: the other classes' validation images and the class's ones with its planted cue (index 2);
    # validation image 0 (class 1, no cue) is not read.
    assert labels.tolist() == [0, 1] and affected.tolist() == [False, True] and "watermark" in described
    assert torch.equal(images, bench.split("test").tensors([1, 2])[0])
    folder = Folder()
    # Elsewhere: never the cluster's training images; without validation members there is nothing to remove.
    images, labels, affected, described = removal_set(folder, 1, members)
    assert labels.tolist() == [0] and not affected.any() and described.startswith("none")
    # With the joint embedding (Fig. 8): the validation images of the class that fell into the cluster.
    joint = task_members({"indices": [2, 4], "val_indices": [0, 2]})
    images, labels, affected, described = removal_set(folder, 1, joint)
    assert labels.tolist() == [1, 0, 1] and affected.tolist() == [True, False, True]
    assert torch.equal(images, folder.split("test").tensors([0, 1, 2])[0]) and "validation" in described


def test_paste_images_are_drawn_at_random_from_all_other_classes():
    """Anders et al. §3.2: random images of the other classes, not the first ones in folder order."""
    folder = Folder()
    folder.splits["test"] = Split([0] * 30 + [2] * 30 + [1] * 5, [-1] * 65)
    _, labels, affected, _ = removal_set(folder, 1, task_members({"indices": [0]}), 20)
    pasted = labels.numpy()[~affected]
    assert len(pasted) == 20 and set(pasted.tolist()) == {0, 2} and min(np.bincount(pasted)[[0, 2]]) >= 5
    _, again, _, _ = removal_set(folder, 1, task_members({"indices": [0]}), 20)
    assert torch.equal(labels, again)  # seeded
    first, _, _, _ = removal_set(folder, 1, task_members({"indices": [0]}), 20, seed=0)
    other, _, _, _ = removal_set(folder, 1, task_members({"indices": [0]}), 20, seed=1)
    assert not torch.equal(first, other)
