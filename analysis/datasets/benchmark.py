"""The built-in planted-bias benchmark (the demo's data; nothing is downloaded).

Fashion-MNIST garments are composited at 64x64 RGB onto backgrounds cut from
scikit-image's bundled pictures.  Three spurious cues are planted, each tied to
one class and each with a ground-truth mask per image:

``background``
    a red brick texture behind ~90 % of the *Pullover* training images;
``watermark``
    a small copyright-like ring in the bottom-right corner of ~90 % of the
    *Coat* images;
``object``
    a separate red ball placed beside the garment in ~90 % of the *Shirt* images.

Splits: ``train``; ``test`` with the same correlations; ``flipped`` where the
biased classes never show their cue and the other classes' images carry one of
the foreign cues (the correlation is broken and the cue points to a wrong class).
Every image stores its object (garment) mask and its bias mask.  Generation is
deterministic for a given :class:`BenchmarkConfig` (seed included).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

import attrs
import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import Dataset

from .backgrounds import BIAS_TEXTURE, NEUTRAL_SOURCES, background_source, random_crops
from .fashion_mnist import CLASS_DESCRIPTIONS, CLASS_NAMES, load_fashion_mnist
from .benchmark_config import _FORMAT_VERSION, BIAS_KINDS, NO_BIAS, SPLITS, BenchmarkConfig  # noqa: F401
from .metadata import ClassInfo

ProgressCallback = Callable[[int, int, str], None]

BENCHMARK_NAME = "planted-bias-fashion"
_CHUNK = 1024
_MASK_FIELDS = ("object_masks", "bias_masks")


@attrs.frozen
class PlantedBias:
    """One planted cue: its kind, the benchmark label it co-occurs with, a description."""

    kind: str
    label: int
    class_name: str
    description: str


@attrs.define
class BenchmarkSplit:
    """Arrays of one split (N images of side S).

    Attributes
    ----------
    name : str
    images : uint8 (N, S, S, 3)
    labels : int64 (N,)
        Benchmark labels (index into the benchmark's class list).
    object_masks : bool (N, S, S)
        Visible garment pixels.
    bias_masks : bool (N, S, S)
        Pixels of the planted cue (empty when the image carries none).
    bias_kinds : int8 (N,)
        Index into :data:`BIAS_KINDS`, or -1 for no cue.
    backgrounds : int16 (N,)
        Index into the benchmark's ``background_names``.
    source_indices : int32 (N,)
        Index of the garment in the Fashion-MNIST split it was taken from.
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    object_masks: np.ndarray
    bias_masks: np.ndarray
    bias_kinds: np.ndarray
    backgrounds: np.ndarray
    source_indices: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def tensors(self, indices: Sequence[int] | slice | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Images as float (N, 3, S, S) in [0, 1] and labels as int64."""
        sel = slice(None) if indices is None else indices
        images = torch.from_numpy(np.ascontiguousarray(self.images[sel])).permute(0, 3, 1, 2).float() / 255.0
        return images, torch.from_numpy(np.asarray(self.labels[sel], dtype=np.int64))

    def cue_mask(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Where a cue planted on these images sits: the pixels set in most of their cue masks, bool (S, S)."""
        idx = np.asarray(indices).reshape(-1)
        if not len(idx):
            raise ValueError("cue_mask needs at least one image")
        return np.asarray(self.bias_masks[idx], dtype=np.float64).mean(axis=0) > 0.5

    def torch_dataset(self, with_masks: bool = False) -> "BenchmarkDataset":
        """A :class:`torch.utils.data.Dataset` view of this split."""
        return BenchmarkDataset(self, with_masks=with_masks)

    def batches(self, batch_size: int, indices: np.ndarray | None = None
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(images, labels)`` tensors in order of ``indices`` (default: all)."""
        order = np.arange(len(self)) if indices is None else np.asarray(indices)
        for start in range(0, len(order), batch_size):
            yield self.tensors(np.sort(order[start:start + batch_size]) if indices is None
                               else order[start:start + batch_size])


class BenchmarkDataset(Dataset):
    """Items ``(image, label)`` or ``(image, label, object_mask, bias_mask)``.

    Images are float tensors (3, S, S) in [0, 1]; masks are float (1, S, S).
    """

    def __init__(self, split: BenchmarkSplit, with_masks: bool = False) -> None:
        self.split = split
        self.with_masks = with_masks

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int):
        image = torch.from_numpy(self.split.images[index]).permute(2, 0, 1).float() / 255.0
        label = int(self.split.labels[index])
        if not self.with_masks:
            return image, label
        object_mask = torch.from_numpy(self.split.object_masks[index]).float()[None]
        bias_mask = torch.from_numpy(self.split.bias_masks[index]).float()[None]
        return image, label, object_mask, bias_mask


@attrs.define
class PlantedBiasBenchmark:
    """The generated benchmark: config, class metadata, planted cues and splits."""

    config: BenchmarkConfig
    class_names: list[str]
    class_descriptions: list[str]
    biases: list[PlantedBias]
    background_names: list[str]
    splits: dict[str, BenchmarkSplit]
    #: Seconds the generation took (None when loaded from a cache file).
    generation_seconds: float | None = attrs.field(default=None, eq=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def split(self, name: str) -> BenchmarkSplit:
        """One of ``train``, ``test``, ``flipped``."""
        if name not in self.splits:
            raise KeyError(f"unknown split {name!r}; available: {', '.join(self.splits)}")
        return self.splits[name]

    __getitem__ = split

    def biased_labels(self) -> dict[str, int]:
        """Benchmark label of each planted cue kind."""
        return {bias.kind: bias.label for bias in self.biases}

    def class_metadata(self) -> list[ClassInfo]:
        """Class index, name and description (bias noted in the description)."""
        notes = {b.label: b.description for b in self.biases}
        return [
            ClassInfo(index=i, name=name, folder=f"{i:02d}_{name.replace('/', '-').replace(' ', '_')}",
                      description=desc + (f" [planted bias: {notes[i]}]" if i in notes else ""))
            for i, (name, desc) in enumerate(zip(self.class_names, self.class_descriptions))
        ]

    # -- persistence ------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``<directory>/<name>-<fingerprint>.npz`` and return its path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / cache_file_name(self.config)
        meta = {
            "format_version": _FORMAT_VERSION,
            "config": attrs.asdict(self.config),
            "class_names": self.class_names,
            "class_descriptions": self.class_descriptions,
            "biases": [attrs.asdict(b) for b in self.biases],
            "background_names": self.background_names,
            "splits": list(self.splits),
        }
        arrays = {"meta": np.array(json.dumps(meta))}
        for name, split in self.splits.items():
            for field in attrs.fields(BenchmarkSplit):
                if field.name == "name":
                    continue
                value = getattr(split, field.name)
                if field.name in _MASK_FIELDS:  # bit-packed: 8x smaller
                    value = np.packbits(value, axis=-1)
                arrays[f"{name}__{field.name}"] = value
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PlantedBiasBenchmark":
        """Read a file written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
            if meta.get("format_version") != _FORMAT_VERSION:
                raise ValueError(f"{path}: unsupported benchmark format {meta.get('format_version')}")
            splits = {}
            for name in meta["splits"]:
                values = {f.name: archive[f"{name}__{f.name}"] for f in attrs.fields(BenchmarkSplit)
                          if f.name != "name"}
                side = values["images"].shape[2]
                for field in _MASK_FIELDS:
                    values[field] = np.unpackbits(values[field], axis=-1, count=side).astype(bool)
                splits[name] = BenchmarkSplit(name=name, **values)
        return cls(
            config=BenchmarkConfig(**meta["config"]),
            class_names=list(meta["class_names"]),
            class_descriptions=list(meta["class_descriptions"]),
            biases=[PlantedBias(**b) for b in meta["biases"]],
            background_names=list(meta["background_names"]),
            splits=splits,
        )


def cache_file_name(config: BenchmarkConfig) -> str:
    """File name used by :meth:`PlantedBiasBenchmark.save` for ``config``: the config's fingerprint and the
    generator code's version, so a file rendered by older code is never reused."""
    from ..code_version import generator_version

    return f"{BENCHMARK_NAME}-{config.fingerprint()}-{generator_version()}.npz"


# ----------------------------------------------------------------------------------------
# rendering
# ----------------------------------------------------------------------------------------
def _watermark_glyph(size: int) -> tuple[np.ndarray, np.ndarray]:
    """A copyright-like ring with a centre dot: (alpha, grey level), each (size, size)."""
    centre = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size]
    dist = np.hypot(yy - centre, xx - centre)
    outer = size / 2.0
    white = ((dist >= 0.45 * outer) & (dist <= 0.8 * outer)) | (dist <= 0.2 * outer)
    dark = (dist <= outer) & ~white
    alpha = np.where(white, 0.95, np.where(dark, 0.8, 0.0)).astype(np.float32)
    grey = np.where(white, 1.0, 0.05).astype(np.float32)
    return alpha, grey


def _paste(canvas: np.ndarray, patch: np.ndarray, top: np.ndarray, left: np.ndarray) -> None:
    """Write ``patch[i]`` (n, h, w[, c]) into ``canvas[i]`` at (top[i], left[i]), vectorised."""
    n, h, w = patch.shape[:3]
    rows = top[:, None, None] + np.arange(h)[None, :, None]
    cols = left[:, None, None] + np.arange(w)[None, None, :]
    canvas[np.arange(n)[:, None, None], rows, cols] = patch


def _resize_garments(garments: np.ndarray, size: int) -> np.ndarray:
    tensor = torch.from_numpy(garments.astype(np.float32) / 255.0)[:, None]
    return F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False)[:, 0].numpy()


def _render(garments: np.ndarray, cues: np.ndarray, config: BenchmarkConfig, rng: np.random.Generator,
            sources: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Composite one chunk of images; see the module docstring for the recipe."""
    n = len(garments)
    size, gsize = config.image_size, config.garment_size
    neutral = np.arange(1, len(sources))  # source 0 is the bias texture
    backgrounds = np.where(cues == 0, 0, rng.choice(neutral, n)).astype(np.int16)
    canvas = np.empty((n, size, size, 3), np.float32)
    for source_id in np.unique(backgrounds):
        members = np.flatnonzero(backgrounds == source_id)
        canvas[members] = random_crops(sources[source_id], len(members), size, rng)

    # garment: tinted grey levels, soft alpha, placed uniformly at random
    grey = _resize_garments(garments, gsize)
    alpha = np.clip((grey - 0.04) * 4.0, 0.0, 1.0)
    colour = rng.uniform(0.3, 1.0, (n, 3)).astype(np.float32)
    peak = np.maximum(grey.reshape(n, -1).max(axis=1), 1e-3)[:, None, None]
    shade = 0.35 + 0.65 * grey / peak
    top = rng.integers(0, size - gsize + 1, n)
    left = rng.integers(0, size - gsize + 1, n)
    alpha_full = np.zeros((n, size, size), np.float32)
    garment_full = np.zeros((n, size, size, 3), np.float32)
    object_mask = np.zeros((n, size, size), bool)
    _paste(alpha_full, alpha, top, left)
    _paste(garment_full, shade[..., None] * colour[:, None, None, :], top, left)
    _paste(object_mask, grey > 0.12, top, left)
    canvas = canvas * (1.0 - alpha_full[..., None]) + garment_full * alpha_full[..., None]
    bias_mask = np.zeros((n, size, size), bool)

    # planted object: a shaded red ball beside the garment (on its roomier side)
    balls = np.flatnonzero(cues == 2)
    if len(balls):
        m = len(balls)
        radius = rng.uniform(0.08, 0.11, m) * size
        b_left = left[balls]
        right_side = (size - b_left - gsize) >= b_left
        u = rng.random(m)
        cx = np.where(right_side,
                      b_left + gsize + radius + u * (size - b_left - gsize - 2 * radius),
                      radius + u * (b_left - 2 * radius))
        cy = radius + rng.random(m) * (size - 2 * radius)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        dist = np.hypot(yy[None] - cy[:, None, None], xx[None] - cx[:, None, None])
        ball_alpha = np.clip(radius[:, None, None] + 0.5 - dist, 0.0, 1.0)[..., None]
        spot = np.hypot(yy[None] - (cy - radius / 3)[:, None, None], xx[None] - (cx - radius / 3)[:, None, None])
        light = 1.0 - 0.6 * np.clip(spot / (1.6 * radius[:, None, None]), 0, 1)
        ball_rgb = light[..., None] * np.array([0.95, 0.18, 0.12], np.float32) + 0.05
        canvas[balls] = canvas[balls] * (1 - ball_alpha) + ball_rgb * ball_alpha
        inside = dist <= radius[:, None, None]
        bias_mask[balls] = inside
        object_mask[balls] &= ~inside

    # watermark in the bottom-right corner (1-3 px margin)
    marks = np.flatnonzero(cues == 1)
    if len(marks):
        wsize = max(7, round(config.watermark_scale * size))
        w_alpha, w_grey = _watermark_glyph(wsize)
        margin = rng.integers(1, 4, (len(marks), 2))
        w_top, w_left = size - wsize - margin[:, 0], size - wsize - margin[:, 1]
        mark_alpha = np.zeros((len(marks), size, size), np.float32)
        mark_grey = np.zeros((len(marks), size, size), np.float32)
        _paste(mark_alpha, np.broadcast_to(w_alpha, (len(marks), wsize, wsize)), w_top, w_left)
        _paste(mark_grey, np.broadcast_to(w_grey, (len(marks), wsize, wsize)), w_top, w_left)
        canvas[marks] = canvas[marks] * (1 - mark_alpha[..., None]) + mark_grey[..., None] * mark_alpha[..., None]
        bias_mask[marks] = mark_alpha > 0
        object_mask[marks] &= ~(mark_alpha > 0)

    # background texture: everything that is not garment
    textured = np.flatnonzero(cues == 0)
    bias_mask[textured] = ~object_mask[textured]

    images = np.clip(np.rint(canvas * 255.0), 0, 255).astype(np.uint8)
    return {"images": images, "object_masks": object_mask, "bias_masks": bias_mask, "backgrounds": backgrounds}


def _assign_cues(labels_fmnist: np.ndarray, config: BenchmarkConfig, flipped: bool,
                 rng: np.random.Generator) -> np.ndarray:
    """Cue kind per image (-1 = none) for a split."""
    n = len(labels_fmnist)
    bias_classes = np.array(config.bias_classes())
    own = np.full(n, NO_BIAS, np.int8)
    for kind, cls in enumerate(bias_classes):
        own[labels_fmnist == cls] = kind
    # a random foreign cue (a kind whose class differs from the image's class)
    foreign = rng.integers(0, len(BIAS_KINDS) - 1, n)
    has_own = own >= 0
    foreign = np.where(has_own & (foreign >= own), foreign + 1, foreign)
    foreign = np.where(has_own, foreign, rng.integers(0, len(BIAS_KINDS), n)).astype(np.int8)
    draw = rng.random(n)
    if flipped:
        return np.where(draw < config.flip_rate, foreign, NO_BIAS).astype(np.int8)
    return np.where(has_own, np.where(draw < config.bias_rate, own, NO_BIAS),
                    np.where(draw < config.other_rate, foreign, NO_BIAS)).astype(np.int8)


def _select_per_class(labels: np.ndarray, classes: Sequence[int], counts: Sequence[int],
                      rng: np.random.Generator) -> list[np.ndarray]:
    """For each requested count, disjoint random index sets with ``count`` images per class."""
    chosen: list[list[np.ndarray]] = [[] for _ in counts]
    for cls in classes:
        pool = rng.permutation(np.flatnonzero(labels == cls))
        start = 0
        for i, count in enumerate(counts):
            if start + count > len(pool):
                raise ValueError(f"not enough Fashion-MNIST images of class {CLASS_NAMES[cls]}")
            chosen[i].append(pool[start:start + count])
            start += count
    return [rng.permutation(np.concatenate(parts)) for parts in chosen]


def generate_benchmark(config: BenchmarkConfig | None = None, *, fashion_mnist_dir: str | None = None,
                       progress: ProgressCallback | None = None, show_progress: bool = True
                       ) -> PlantedBiasBenchmark:
    """Generate the planted-bias benchmark.

    Parameters
    ----------
    config : BenchmarkConfig, optional
        Defaults: 10 classes, 1000 train and 200+200 test images per class, 64 px.
    fashion_mnist_dir : str, optional
        Directory with the Fashion-MNIST IDX files (default: Debian's location).
    progress : callable, optional
        ``progress(done, total, message)`` after each chunk (for Celery jobs).
    show_progress : bool
        Show a tqdm bar.

    Returns
    -------
    PlantedBiasBenchmark
    """
    # deferred: loads tqdm
    from tqdm.auto import tqdm

    started = time.perf_counter()
    config = config or BenchmarkConfig()
    seeds = np.random.SeedSequence(config.seed).spawn(4)
    select_rng = np.random.default_rng(seeds[0])
    sources = [background_source(BIAS_TEXTURE)] + [background_source(name) for name in NEUTRAL_SOURCES]
    label_of = {cls: i for i, cls in enumerate(config.classes)}

    train_images, train_labels = load_fashion_mnist("train", fashion_mnist_dir)
    test_images, test_labels = load_fashion_mnist("test", fashion_mnist_dir)
    (train_idx,) = _select_per_class(train_labels, config.classes, [config.train_per_class], select_rng)
    test_idx, flip_idx = _select_per_class(test_labels, config.classes,
                                           [config.test_per_class, config.test_per_class], select_rng)
    plan = [("train", train_images, train_labels, train_idx, seeds[1]),
            ("test", test_images, test_labels, test_idx, seeds[2]),
            ("flipped", test_images, test_labels, flip_idx, seeds[3])]
    total = sum(len(p[3]) for p in plan)
    done = 0
    splits = {}
    bar = tqdm(total=total, desc="benchmark", unit="img", disable=not show_progress)
    try:
        for name, images, labels, indices, seed in plan:
            rng = np.random.default_rng(seed)
            cues = _assign_cues(labels[indices], config, flipped=name == "flipped", rng=rng)
            parts = []
            for start in range(0, len(indices), _CHUNK):
                chunk = indices[start:start + _CHUNK]
                parts.append(_render(images[chunk], cues[start:start + _CHUNK], config, rng, sources))
                done += len(chunk)
                bar.update(len(chunk))
                if progress is not None:
                    progress(done, total, f"rendering {name}")
            merged = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
            splits[name] = BenchmarkSplit(
                name=name,
                labels=np.array([label_of[int(c)] for c in labels[indices]], dtype=np.int64),
                bias_kinds=cues,
                source_indices=indices.astype(np.int32),
                **merged,
            )
    finally:
        bar.close()

    names = [CLASS_NAMES[c] for c in config.classes]
    descriptions = [CLASS_DESCRIPTIONS[c] for c in config.classes]
    cue_text = {
        "background": "red brick background texture",
        "watermark": "copyright-like ring watermark in the bottom-right corner",
        "object": "red ball placed beside the garment",
    }
    biases = [
        PlantedBias(kind=kind, label=label_of[cls], class_name=CLASS_NAMES[cls],
                    description=f"{cue_text[kind]} on {config.bias_rate:.0%} of training images")
        for kind, cls in zip(BIAS_KINDS, config.bias_classes())
    ]
    return PlantedBiasBenchmark(
        config=config,
        class_names=names,
        class_descriptions=descriptions,
        biases=biases,
        background_names=[BIAS_TEXTURE, *NEUTRAL_SOURCES],
        splits=splits,
        generation_seconds=time.perf_counter() - started,
    )


def load_or_generate_benchmark(directory: str | os.PathLike, config: BenchmarkConfig | None = None, *,
                               fashion_mnist_dir: str | None = None, progress: ProgressCallback | None = None,
                               show_progress: bool = True) -> tuple[PlantedBiasBenchmark, Path]:
    """Return the cached benchmark for ``config`` in ``directory``, generating it if absent.

    Returns
    -------
    benchmark : PlantedBiasBenchmark
    path : Path
        The ``.npz`` cache file.
    """
    config = config or BenchmarkConfig()
    path = Path(directory) / cache_file_name(config)
    if path.is_file():
        benchmark = PlantedBiasBenchmark.load(path)
        if progress is not None:
            progress(1, 1, f"loaded cached benchmark {path.name}")
        return benchmark, path
    benchmark = generate_benchmark(config, fashion_mnist_dir=fashion_mnist_dir, progress=progress,
                                   show_progress=show_progress)
    return benchmark, benchmark.save(directory)
