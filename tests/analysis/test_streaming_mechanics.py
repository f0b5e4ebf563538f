"""The shard-map mechanics: shard plans, partial bytes, merge checks, reuse of finished shards, bounded memory,
unreadable images, devices and spec validation."""
from __future__ import annotations

import gc
import tracemalloc
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

from analysis.models import DEMO_ARCH, SmallResNet, save_checkpoint
from analysis.streaming import (
    DataSource,
    DirectoryShardStore,
    Execution,
    GroupedTopK,
    ModelSource,
    Partial,
    PassSpec,
    finish,
    merge,
    plan_shards,
    register_data_source,
    resolve_device,
    run_pass,
    run_shard,
)
from analysis.streaming.shards import Shard
from tests.analysis.streaming_fixtures import NUM_CLASSES, assert_same_topk, tiny_data, tiny_model  # noqa: F401


class NoiseImages(Dataset):
    """``n`` seeded random 32 px images (made on demand, nothing kept), labels ``i % classes``."""

    def __init__(self, n: int, classes: int) -> None:
        self.targets = [i % classes for i in range(n)]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(i)), self.targets[i]


register_data_source("test_noise")(lambda n, classes=NUM_CLASSES, **_: NoiseImages(int(n), int(classes)))


def test_shard_plans_tile_the_index_on_batch_bounds():
    shards = plan_shards(1000, 7, align=64)
    assert shards[0].start == 0 and shards[-1].stop == 1000
    assert all(a.stop == b.start for a, b in zip(shards, shards[1:]))
    assert all(s.start % 64 == 0 for s in shards) and len(shards) == 7
    assert plan_shards(100, 8, align=64) == [Shard(0, 64), Shard(64, 100)]  # fewer blocks than shards
    with pytest.raises(ValueError, match="n_shards >= 1"):
        plan_shards(10, 0)


def test_topk_merges_in_any_grouping_and_order_with_ties():
    g = torch.Generator().manual_seed(0)
    values = torch.randint(0, 4, (60, 3), generator=g).float()  # many ties
    groups, indices = torch.randint(0, 3, (60,), generator=g), torch.arange(60)
    whole = GroupedTopK(5).add(groups, values, indices)
    parts = [GroupedTopK(5).add(groups[s], values[s], indices[s]) for s in (slice(40, 60), slice(0, 17), slice(17, 40))]
    merged = GroupedTopK(5).merge(parts)
    assert_same_topk(whole, merged)
    batched = GroupedTopK(5, batched=True)  # the CUDA strategy: one padded sort for all groups
    for s in (slice(0, 17), slice(17, 40), slice(40, 60)):
        batched.add(groups[s], values[s], indices[s])
    assert_same_topk(whole, batched)
    for group in range(3):
        members = np.flatnonzero(groups.numpy() == group)
        expected = sorted(members, key=lambda i: (-values[i, 1].item(), i))[:5]  # value desc, then index asc
        assert whole.top(group, 1, 5).tolist() == expected
    restored = GroupedTopK.from_arrays(merged.to_arrays("x_"), "x_")
    assert_same_topk(restored, whole)


def test_partials_round_trip_as_bytes_and_merge_refuses_gaps_and_foreign_shards(tiny_data, tiny_model):
    source, images, _ = tiny_data
    model, _ = tiny_model
    spec = PassSpec(kind="predictions", model=model, data=source, params={"k": 2}, indices=np.arange(96))
    a, b, c = (run_shard(spec, Shard(s, s + 32), execution=Execution(batch_size=32)) for s in (0, 32, 64))
    again = Partial.from_bytes(a.to_bytes(compress=True))
    assert (again.start, again.stop, again.digest) == (0, 32, spec.digest())
    np.testing.assert_array_equal(again.arrays["topk"], a.arrays["topk"])
    assert len(finish(spec, merge(spec, [c, a, b])).indices) == 96  # any order
    with pytest.raises(ValueError, match="leave a gap"):
        merge(spec, [a, c])
    with pytest.raises(ValueError, match="overlap"):
        merge(spec, [a, run_shard(spec, Shard(0, 64), execution=Execution(batch_size=32)), c])
    with pytest.raises(ValueError, match="not all 96"):
        finish(spec, merge(spec, [a, b]))
    other = PassSpec(kind="predictions", model=model, data=source, params={"k": 3}, indices=np.arange(96))
    with pytest.raises(ValueError, match="belong to another pass"):
        merge(other, [a, b, c])
    with pytest.raises(ValueError, match="not a shard partial"):
        Partial.from_bytes(_npz_bytes())


def _npz_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, x=np.zeros(2))
    return buffer.getvalue()


def test_finished_shards_are_reused_and_a_lost_one_alone_is_recomputed(tiny_data, tiny_model, tmp_path):
    source, _, _ = tiny_data
    model, _ = tiny_model
    spec = PassSpec(kind="salient", model=model, data=source, params={"pool": 3})
    store = DirectoryShardStore(tmp_path)
    messages: list[str] = []
    first = run_pass(spec, 4, execution=Execution(batch_size=32), store=store,
                     progress=lambda d, t, m: messages.append(m))
    files = sorted(tmp_path.rglob("*.npz"))
    assert len(files) == 4 and not any("reused" in m for m in messages)
    files[2].unlink()
    messages.clear()
    second = run_pass(spec, 4, execution=Execution(batch_size=32), store=store,
                      progress=lambda d, t, m: messages.append(m))
    assert sum("reused" in m for m in messages) == 3
    recomputed = {m.split("shard ")[-1] for m in messages if "reused" not in m}
    assert recomputed == {"-".join(str(int(bound)) for bound in files[2].stem.split("-"))}
    np.testing.assert_array_equal(first.importance, second.importance)
    assert_same_topk(first.by_label, second.by_label)


def _retained_bytes() -> int:
    """Bytes of live torch tensors (by storage) and numpy arrays (as tracemalloc sees numpy's domain)."""
    with warnings.catch_warnings():  # isinstance() on deprecated torch objects warns
        warnings.simplefilter("ignore")
        storages = [obj.untyped_storage() for obj in gc.get_objects() if isinstance(obj, torch.Tensor)]
    tensors = sum({s.data_ptr(): s.nbytes() for s in storages}.values())
    numpy_domain = tracemalloc.DomainFilter(inclusive=True, domain=np.lib.tracemalloc_domain)
    arrays = sum(t.size for t in tracemalloc.take_snapshot().filter_traces([numpy_domain]).traces)
    return tensors + arrays


def _held_after_pass(kind: str, params: dict, n: int, model) -> int:
    """Bytes held when the pass has read its last batch, above what was held before it started."""
    spec = PassSpec(kind=kind, model=model, data=DataSource("test_noise", {"n": n}), params=params)
    run_shard(spec, Shard(0, 16), execution=Execution(batch_size=16))  # model and dataset cached, warm
    gc.collect()
    tracemalloc.start()
    try:
        baseline, held = _retained_bytes(), []
        run_shard(spec, Shard(0, n), execution=Execution(batch_size=16),
                  progress=lambda done, total, m: held.append(_retained_bytes()) if done == total else None)
    finally:
        tracemalloc.stop()
    return held[0] - baseline


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory):
    """A random demo ResNet with 256 features, so that keeping them per image shows."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("wide") / "wide.pt"
    save_checkpoint(path, SmallResNet(num_classes=NUM_CLASSES, width=32), arch=DEMO_ARCH, mean=(0.5,) * 3,
                    std=(0.25,) * 3, class_names=list("abcd"), arch_kwargs={"width": 32}, input_size=32)
    return ModelSource(str(path))


def test_salient_pass_memory_does_not_grow_with_the_number_of_images(wide_model):
    small, large = (_held_after_pass("salient", {"pool": 2}, n, wide_model) for n in (64, 256))
    assert large - small <= 0.1 * small, f"memory held by the pass grew from {small} to {large} bytes"
    # the measure sees what a pass keeps per image: 192 more images x 256 float32 features
    small, large = (_held_after_pass("prototype_features", {}, n, wide_model) for n in (64, 256))
    assert large - small >= 192 * 256 * 4


def test_an_unreadable_image_is_skipped_and_counted(tmp_path, tiny_model):
    model, _ = tiny_model
    rng = np.random.default_rng(0)
    for cls in ("a", "b", "c", "d"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.jpg")
    (tmp_path / "b" / "1.jpg").write_bytes(b"not a jpeg")
    source = DataSource("image_folder", {"root": str(tmp_path), "image_size": 32})
    result = run_pass(PassSpec(kind="predictions", model=model, data=source, params={"k": 2}), 2,
                      execution=Execution(batch_size=4, num_workers=1))
    assert result.skipped.tolist() == [4]  # b/1.jpg: the fifth file in folder order
    assert len(result.indices) == 11 and 4 not in result.indices.tolist()


def test_specs_are_validated_and_round_trip(tiny_data, tiny_model, tmp_path):
    source, _, _ = tiny_data
    model, _ = tiny_model
    spec = PassSpec(kind="salient", model=model, data=source, params={"pool": 7}, indices=[3, 1, 2], amp=True)
    again = PassSpec.from_dict(spec.to_dict())
    assert again == spec and again.digest() == spec.digest()
    assert PassSpec(kind="salient", model=model, data=source, params={"pool": 8}).digest() != spec.digest()
    with pytest.raises(ValueError, match="unknown pass kind 'nope'"):
        PassSpec(kind="nope", model=model, data=source)
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['poool'\]"):
        PassSpec(kind="salient", model=model, data=source, params={"poool": 3})
    with pytest.raises(ValueError, match="cannot run with amp=True"):
        PassSpec(kind="lrp", model=model, data=source, amp=True)
    with pytest.raises(ValueError, match="unknown data source kind"):
        DataSource("ftp", {})
    copy = tmp_path / "copy.pt"
    copy.write_bytes(open(model.checkpoint, "rb").read() + b"")
    assert type(model)(str(copy)).fingerprint() == model.fingerprint()  # content, not path


def test_device_comes_from_the_argument_then_the_environment(monkeypatch):
    monkeypatch.setenv("SALIENT_DEVICE", "cpu")
    assert resolve_device() == torch.device("cpu")
    monkeypatch.delenv("SALIENT_DEVICE")
    assert resolve_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
