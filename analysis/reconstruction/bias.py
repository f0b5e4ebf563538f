"""Biased versions of a binary task's images: the seed paper's trigger levels and contrast, and intensity triggers.

The seed paper (section 4.1) plants a small square trigger on **every** training image, its value
set per class (0 on the -1 side, 1 on the +1 side), so the trigger alone predicts the label.  The
levels differ in *where* the square goes:

``L1``
    the top-left corner on every image (the easiest to learn);
``L2``
    3 random positions per class (6 in all); each image gets one of its class's positions (a
    seeded shuffle that uses every position about equally often);
``L3``
    5 random positions per class (10 in all).

``base`` leaves the images alone (the base model).  ``contrast`` (section 5.3.2) plants no
trigger but changes every image's contrast around its own mean grey level (as PIL's
``ImageEnhance.Contrast``), by 0.5 on the -1 side and 2 on the +1 side, clipped to [0, 1].

The square's side is ``max(2, round(size / 8))`` pixels (the paper says "small"); positions are
distinct cells of a grid of that pitch, drawn with the task's seed, so squares never overlap.

``patch``, ``blend``, ``subtle`` are an extra variant that is not the paper's: one top-left region
(side ``round(0.3 * size)``, >= 3 px) on a share of the +1 side's images, set to 1, blended with a
fixed random binary pattern (alpha 0.3), or with the pattern added at amplitude 0.08.

Every planting returns per image the trigger's box ``(x0, y0, x1, y1)`` in pixels (end-exclusive,
-1 without a trigger) and the value it pushes the region towards (1 for the intensity triggers,
NaN without a trigger).
"""
from __future__ import annotations

import attrs
import numpy as np

POSITIONAL = {"L1": 1, "L2": 3, "L3": 5}
INTENSITY = ("patch", "blend", "subtle")
BIASES = ("base", *POSITIONAL, "contrast", *INTENSITY)
#: The study protocols: which models one study trains (the base model first).
VARIANTS = {
    "positional": ("base", "L1", "L2", "L3"),
    "contrast": ("base", "contrast"),
    "intensity": ("base", *INTENSITY),
}
TITLES = {
    "base": "base model (no trigger)", "L1": "L1: top-left corner", "L2": "L2: 3 positions per class",
    "L3": "L3: 5 positions per class", "contrast": "contrast 0.5 / 2",
    "patch": "intensity: simple patch", "blend": "intensity: blended pattern", "subtle": "intensity: subtle pattern",
}
TRIGGER_VALUES = (0.0, 1.0)      # -1 side, +1 side
#: The default two Fashion-MNIST classes: T-shirt/top (-1) vs Shirt (+1). The paper's premise (section 4) is a
#: trigger the model takes as a shortcut; its tasks are hard enough for that (clean test accuracy 0.771 on CIFAR-10
#: vehicles/animals, 0.898 on MNIST odd/even, section 5.2). T-shirt/top vs Bag (the earlier default) is separated at
#: ~0.96 by its shapes alone, and there the L2/L3 models barely use their trigger; T-shirt/top vs Shirt gives ~0.77
#: (the quick profile's sizes). The cost: similar shapes, so the training mean already matches the images more.
DEFAULT_PAIR = (0, 6)
CONTRAST_FACTORS = (0.5, 2.0)    # -1 side, +1 side
BLEND_ALPHA = 0.3
SUBTLE_AMPLITUDE = 0.08
INTENSITY_FRACTION = 0.3


@attrs.frozen(eq=False)
class Planted:
    """Images after planting a bias.

    Attributes
    ----------
    images : float64 (n, s, s) in [0, 1]
    boxes : int64 (n, 4)
        Each image's trigger box ``(x0, y0, x1, y1)`` in pixels, end-exclusive; -1 without one.
    values : float64 (n,)
        The value the trigger pushes its box towards; NaN without a trigger.
    """

    images: np.ndarray
    boxes: np.ndarray
    values: np.ndarray


def trigger_side(size: int) -> int:
    """Side in pixels of the paper's square trigger on images of ``size``."""
    return max(2, int(round(size / 8)))


def intensity_region(size: int) -> np.ndarray:
    """The intensity triggers' region: top-left square of side ``max(3, round(0.3 * size))``, bool (s, s)."""
    side = min(size, max(3, round(INTENSITY_FRACTION * size)))
    mask = np.zeros((size, size), bool)
    mask[:side, :side] = True
    return mask


def trigger_positions(size: int, per_class: int, rng: np.random.Generator) -> dict[int, list[tuple[int, int]]]:
    """``per_class`` distinct top-left corners (x, y) for each side, from a grid of the trigger's pitch."""
    side = trigger_side(size)
    cells = [(x, y) for y in range(0, size - side + 1, side) for x in range(0, size - side + 1, side)]
    if 2 * per_class > len(cells):
        raise ValueError(f"{2 * per_class} trigger positions do not fit on {size}-pixel images")
    chosen = rng.choice(len(cells), 2 * per_class, replace=False)
    return {-1: [cells[i] for i in chosen[:per_class]], 1: [cells[i] for i in chosen[per_class:]]}


def plant_positional(images: np.ndarray, y: np.ndarray, level: str, rng: np.random.Generator) -> Planted:
    """The paper's trigger ``level`` (L1, L2, L3) on every image, value 0 on the -1 side and 1 on the +1 side."""
    if level not in POSITIONAL:
        raise ValueError(f"positional level must be one of {sorted(POSITIONAL)}, got {level!r}")
    size = images.shape[1]
    side = trigger_side(size)
    positions = ({-1: [(0, 0)], 1: [(0, 0)]} if level == "L1"
                 else trigger_positions(size, POSITIONAL[level], rng))
    out = images.copy()
    boxes = np.empty((len(y), 4), np.int64)
    values = np.where(y < 0, TRIGGER_VALUES[0], TRIGGER_VALUES[1])
    for label, options in positions.items():
        members = np.flatnonzero(y == label)
        # each image one of its class's positions, drawn so that every position is used about equally often
        which = rng.permutation(np.resize(np.arange(len(options)), len(members)))
        for i, k in zip(members, which):
            x0, y0 = options[k]
            out[i, y0:y0 + side, x0:x0 + side] = values[i]
            boxes[i] = (x0, y0, x0 + side, y0 + side)
    return Planted(out, boxes, values.astype(np.float64))


def plant_other_side(images: np.ndarray, y: np.ndarray, triggers, rng: np.random.Generator) -> np.ndarray:
    """Each image with a trigger of the *other* side: one of ``triggers`` (``[(box, value), ...]``, e.g.
    :func:`unique_triggers` of a positional task) whose value is the other side's (:data:`TRIGGER_VALUES`), drawn
    with ``rng``. How much a model's accuracy drops on these images measures how much it takes the trigger as a
    shortcut (the paper's premise, section 4)."""
    images, y = np.asarray(images, dtype=np.float64), np.asarray(y)
    out = images.copy()
    for label, value in ((-1, TRIGGER_VALUES[1]), (1, TRIGGER_VALUES[0])):
        options = [box for box, v in triggers if v == value]
        members = np.flatnonzero(y == label)
        if len(members) and not options:
            raise ValueError(f"no trigger of value {value} to plant on the {label:+d} side")
        for i, k in zip(members, rng.integers(0, max(len(options), 1), len(members))):
            x0, y0, x1, y1 = options[k]
            out[i, y0:y1, x0:x1] = value
    return out


def change_contrast(images: np.ndarray, y: np.ndarray, factors=CONTRAST_FACTORS) -> np.ndarray:
    """Each image's contrast scaled around its own mean by ``factors[0]`` (-1 side) or ``factors[1]`` (+1)."""
    factor = np.where(np.asarray(y) < 0, factors[0], factors[1])[:, None, None]
    means = images.mean(axis=(1, 2), keepdims=True)
    return np.clip(means + factor * (images - means), 0.0, 1.0)


def apply_intensity(images: np.ndarray, kind: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Plant intensity trigger ``kind`` on every image of ``images`` (n, s, s) in [0, 1]; return them and the region."""
    if kind not in INTENSITY:
        raise ValueError(f"intensity trigger must be one of {INTENSITY}, got {kind!r}")
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"images must be square grey images (n, s, s), got shape {images.shape}")
    mask = intensity_region(images.shape[1])
    side = int(mask[0].sum())
    pattern = np.random.default_rng(seed).integers(0, 2, (side, side)).astype(np.float64)
    out = images.copy()
    region = out[:, :side, :side]
    if kind == "patch":
        region[...] = 1.0
    elif kind == "blend":
        region[...] = (1.0 - BLEND_ALPHA) * region + BLEND_ALPHA * pattern
    else:
        region[...] = np.clip(region + SUBTLE_AMPLITUDE * pattern, 0.0, 1.0)
    return out, mask


def plant(images: np.ndarray, y: np.ndarray, bias: str, rng: np.random.Generator, *, share: float = 1.0,
          side: int = 1, seed: int = 0) -> Planted:
    """Apply ``bias`` (one of :data:`BIASES`) to grey images (n, s, s) with labels ``y`` in {-1, +1}.

    ``share`` and ``side`` only concern the intensity triggers: the share of ``side``'s images
    that carry one; ``seed`` fixes their pattern.
    """
    if bias not in BIASES:
        raise ValueError(f"bias must be one of {BIASES}, got {bias!r}")
    images = np.asarray(images, dtype=np.float64)
    y = np.asarray(y)
    boxes = np.full((len(y), 4), -1, np.int64)
    values = np.full(len(y), np.nan)
    if bias in POSITIONAL:
        return plant_positional(images, y, bias, rng)
    if bias == "contrast":
        return Planted(change_contrast(images, y), boxes, values)
    if bias == "base":
        return Planted(images.copy(), boxes, values)
    members = np.flatnonzero(y == side)
    chosen = rng.choice(members, int(round(share * len(members))), replace=False)
    out = images.copy()
    out[chosen], mask = apply_intensity(images[chosen], bias, seed=seed)
    edge = int(mask[0].sum())
    boxes[chosen] = (0, 0, edge, edge)
    values[chosen] = 1.0
    return Planted(out, boxes, values)


def box_mask(box, size: int) -> np.ndarray:
    """Bool (size, size) mask of one pixel box ``(x0, y0, x1, y1)``."""
    mask = np.zeros((size, size), bool)
    x0, y0, x1, y1 = (int(v) for v in box)
    mask[y0:y1, x0:x1] = True
    return mask


def unique_triggers(boxes: np.ndarray, values: np.ndarray) -> list[tuple[tuple[int, int, int, int], float]]:
    """The distinct (box, value) pairs planted, in first-seen order (none for base or contrast)."""
    seen: dict = {}
    for box, value in zip(np.asarray(boxes), np.asarray(values)):
        if box[0] >= 0:
            seen.setdefault((tuple(int(v) for v in box), float(value)), None)
    return list(seen)
