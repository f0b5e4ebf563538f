"""Evidence of a misclassification-agreement study: predictions, iterative FGSM, LIME explanations.

All images are float tensors in [0, 1], shape (N, 3, H, W), or uint8 arrays (N, H, W, 3) for LIME
(which segments and perturbs them on [0, 1]).
"""
from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable

import attrs
import numpy as np
import torch
import torch.nn.functional as F

Progress = Callable[[int, int, str], None]

#: The paper's LIME settings (Stock & Cisse §2-3.2: sigma = 0.25, n = 1000, the top 8 superpixels; the
#: quickshift settings and ``hide_color`` are the defaults of ``lime``'s ``LimeImageExplainer.explain_instance``);
#: ``num_samples`` is a study setting. ``segment_size``: quickshift runs on the image resized to this side
#: (the paper's 224 px crops), so a small image gets as many superpixels (tens) as an ImageNet crop;
#: None segments at the image's own size. ``hide_color`` None: a hidden superpixel shows its mean colour.
LIME_DEFAULTS = {"kernel_size": 4, "max_dist": 200, "ratio": 0.2, "num_samples": 1000, "kernel_width": 0.25,
                 "num_features": 8, "segment_size": 224, "hide_color": None}


@torch.no_grad()
def predict_topk(handle, images: torch.Tensor, k: int, batch_size: int = 256) -> np.ndarray:
    """The ``k`` highest-scoring classes per image, best first: int array (N, k)."""
    out = []
    for start in range(0, len(images), batch_size):
        logits = handle.logits(images[start:start + batch_size])
        out.append(logits.topk(k, dim=1).indices.cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, k), dtype=np.int64)


def misclassified(topk: np.ndarray, labels: np.ndarray, k: int = 1) -> np.ndarray:
    """Indices of images whose true label is not among the first ``k`` predictions."""
    return np.flatnonzero(~(topk[:, :k] == np.asarray(labels)[:, None]).any(axis=1))


@attrs.frozen
class AdversarialResult:
    images: torch.Tensor  # (N, 3, H, W) in [0, 1]
    predictions: np.ndarray  # (N,) prediction after the attack
    steps: np.ndarray  # (N,) steps taken; the first flip or ``max_steps``
    flipped: np.ndarray  # (N,) bool: correctly classified before, wrong after the attack
    correct: np.ndarray  # (N,) bool: correctly classified before the attack (only these are attacked)


def iterative_fgsm(handle, images: torch.Tensor, labels: torch.Tensor, *, step: float = 0.001,
                   max_steps: int = 10, batch_size: int = 128) -> AdversarialResult:
    """Untargeted I-FGSM (BIM): x <- clip(x + step * sign(grad CE)), each image stops at its first flip."""
    advs, preds, steps_all, correct_all = [], [], [], []
    for start in range(0, len(images), batch_size):
        x0 = images[start:start + batch_size].to(handle.device)
        y = labels[start:start + batch_size].to(handle.device)
        x = x0.clone()
        steps = torch.zeros(len(x), dtype=torch.long, device=x.device)
        with torch.no_grad():
            pred = handle.logits(x).argmax(1)
        active = pred == y  # an image already wrong is not attacked (Stock & Cisse §3.2)
        correct_all.append(active.cpu().numpy().copy())
        for _ in range(max_steps):
            if not active.any():
                break
            xa = x[active].clone().requires_grad_(True)
            loss = F.cross_entropy(handle.logits(xa), y[active], reduction="sum")
            (grad,) = torch.autograd.grad(loss, xa)
            with torch.no_grad():
                xa = (xa + step * grad.sign()).clamp(0, 1)
                x[active] = xa
                steps[active] += 1
                new_pred = handle.logits(xa).argmax(1)
                pred[active] = new_pred
                idx = active.nonzero().squeeze(1)
                active[idx[new_pred != y[active]]] = False
        advs.append(x.detach().cpu())
        preds.append(pred.cpu().numpy())
        steps_all.append(steps.cpu().numpy())
    preds_np = np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)
    correct = np.concatenate(correct_all) if correct_all else np.zeros(0, dtype=bool)
    return AdversarialResult(
        images=torch.cat(advs) if advs else images[:0], predictions=preds_np,
        steps=np.concatenate(steps_all) if steps_all else np.zeros(0, dtype=np.int64),
        flipped=correct & (preds_np != labels.cpu().numpy()), correct=correct,
    )


@attrs.frozen
class LimeExplanation:
    image: np.ndarray  # uint8 (H, W, 3): top superpixels kept, the rest hidden (black)
    mask: np.ndarray  # bool (H, W): the kept superpixels
    segments: np.ndarray  # int (H, W), labels 0..n_segments-1
    seconds: float

    @property
    def n_segments(self) -> int:
        return int(self.segments.max()) + 1 if self.segments.size else 0


def unit_image(image: np.ndarray) -> np.ndarray:
    """An (H, W, 3) image as float64 in [0, 1]: uint8 is divided by 255, a float image must already be in [0, 1]."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3), got {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float64) / 255.0
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"image must be uint8 or float in [0, 1], got {image.dtype}")
    if image.size and (image.min() < 0 or image.max() > 1):
        raise ValueError(f"a float image must be in [0, 1] (scikit-image's rgb2lab reads it so), got values in "
                         f"[{image.min():g}, {image.max():g}]; pass uint8 for 0-255 images")
    return image.astype(np.float64)


def quickshift_segments(image: np.ndarray, *, kernel_size: float = 4, max_dist: float = 200, ratio: float = 0.2,
                        segment_size: int | None = 224, seed: int = 0) -> np.ndarray:
    """Quickshift superpixels (H, W) of an image (H, W, 3), uint8 or float in [0, 1]; labels 0..n-1.

    Quickshift converts to Lab with scikit-image's ``rgb2lab``, which reads a float image as [0, 1]
    (a uint8 one it rescales itself, as in LIME's own examples): on a float image in 0-255 the
    colour distances are ~255x too large, and the paper's settings split a 224 px photo into
    hundreds of superpixels instead of tens (scikit-image's astronaut: 318 instead of 33).

    With ``segment_size``, the image is resized (bilinear) so its shorter side is ``segment_size``,
    segmented there, and the segment map is sampled back at the original pixels (nearest): the
    paper segments 224 px crops, and a small image segmented at its own size gives only a few
    superpixels (the benchmark's 32 px images: 1-2), so its top 8 would show all of it.
    """
    # deferred: loads scikit-image
    from skimage.segmentation import quickshift

    # deferred: loads scikit-image
    from skimage.transform import resize

    work = unit_image(image)
    height, width = work.shape[:2]
    scale = segment_size / min(height, width) if segment_size else 1.0
    if scale != 1.0:
        work = resize(work, (round(height * scale), round(width * scale)), order=1)
    segments = quickshift(work, kernel_size=kernel_size, max_dist=max_dist, ratio=ratio, rng=seed)
    if scale != 1.0:
        rows = np.minimum(((np.arange(height) + 0.5) * scale).astype(int), segments.shape[0] - 1)
        cols = np.minimum(((np.arange(width) + 0.5) * scale).astype(int), segments.shape[1] - 1)
        segments = segments[rows[:, None], cols[None, :]]
    return np.unique(segments, return_inverse=True)[1].reshape(height, width)


def lime_explain(handle, image: np.ndarray, label: int, *, num_samples: int = 1000, kernel_size: float = 4,
                 max_dist: float = 200, ratio: float = 0.2, kernel_width: float = 0.25, num_features: int = 8,
                 segment_size: int | None = 224, hide_color: float | None = None, batch_size: int = 100,
                 seed: int = 0) -> LimeExplanation:
    """LIME (quickshift superpixels, :func:`quickshift_segments`) of one image (uint8, or float in
    [0, 1]) for ``label``: the top ``num_features`` positive superpixels, the rest hidden (black).

    ``hide_color``: what a superpixel switched off in LIME's perturbed samples shows; None = its mean
    colour, the default of ``lime``'s ``LimeImageExplainer.explain_instance``; a number in [0, 1] =
    that grey level (0 = black). The classifier sees [0, 1] images.
    """
    # deferred: loads lime (scikit-learn)
    from lime.lime_image import LimeImageExplainer

    if hide_color is not None and not 0 <= hide_color <= 1:
        raise ValueError(f"hide_color must be None (each superpixel's mean) or within [0, 1], got {hide_color}")
    start = time.perf_counter()
    unit = unit_image(image)

    @torch.no_grad()
    def classifier(batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float()
        return torch.softmax(handle.logits(x), dim=1).cpu().numpy()

    def segmenter(img: np.ndarray) -> np.ndarray:
        return quickshift_segments(img, kernel_size=kernel_size, max_dist=max_dist, ratio=ratio,
                                   segment_size=segment_size, seed=seed)

    explainer = LimeImageExplainer(kernel_width=kernel_width, random_state=seed)
    with contextlib.redirect_stderr(io.StringIO()):  # lime 0.2 draws a tqdm bar of its own
        explanation = explainer.explain_instance(
            unit, classifier, labels=(int(label),), top_labels=None, hide_color=hide_color,
            num_samples=num_samples, batch_size=batch_size, segmentation_fn=segmenter, random_seed=seed,
        )
    shown, mask = explanation.get_image_and_mask(int(label), positive_only=True, num_features=num_features,
                                                 hide_rest=True)
    return LimeExplanation(image=np.round(np.clip(shown, 0, 1) * 255).astype(np.uint8), mask=mask.astype(bool),
                           segments=explanation.segments, seconds=time.perf_counter() - start)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) [0, 1] tensor -> (N, H, W, 3) uint8."""
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def adversarial_with_explanations(handle, images: torch.Tensor, labels: torch.Tensor, *, step: float = 0.001,
                                  max_steps: int = 10, lime: dict | None = None,
                                  progress: Progress | None = None) -> dict:
    """Attack every image, explain each flipped one for its adversarial class; timings included."""
    progress = progress or (lambda *a: None)
    t0 = time.perf_counter()
    adv = iterative_fgsm(handle, images, labels, step=step, max_steps=max_steps)
    attack_seconds = time.perf_counter() - t0
    flipped = np.flatnonzero(adv.flipped)
    adv_uint8 = to_uint8(adv.images[flipped]) if len(flipped) else np.zeros((0,) + tuple(images.shape[2:]) + (3,),
                                                                             np.uint8)
    settings = {**LIME_DEFAULTS, **(lime or {})}
    explanations = []
    for i, index in enumerate(flipped):
        progress(i, len(flipped), f"LIME explanation {i + 1}/{len(flipped)}")
        explanations.append(lime_explain(handle, adv_uint8[i], int(adv.predictions[index]), **settings))
    progress(len(flipped), len(flipped), "explanations ready")
    return {"adversarial": adv, "indices": flipped, "images": adv_uint8, "explanations": explanations,
            "attack_seconds": attack_seconds, "lime_seconds": sum(e.seconds for e in explanations)}

