"""Training the demo ResNet on the planted-bias benchmark (standard or L2-robust).

Choices for the 2-core CPU budget (15 minutes per flavour) are in
:func:`standard_config` and :func:`robust_config`.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import attrs
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..datasets.benchmark import BIAS_KINDS, BenchmarkSplit, PlantedBiasBenchmark
from ..models.checkpoints import save_checkpoint
from ..models.demo_resnet import DEMO_ARCH, SmallResNet
from ..models.handle import ModelHandle, NormalizedClassifier
from .adversarial import l2_pgd
from .config import TrainConfig, standard_config

ProgressCallback = Callable[[int, int, str], None]
#: Narrowest model trained in channels-last (NHWC) layout. oneDNN's 1x1 convolution backward-weights kernel
#: with an NHWC source and fewer input channels than its channel block (8 with AVX2, 16 with AVX-512) writes past
#: its workspace (uxlfoundation/oneDNN#6035): the stride-2 shortcut of the second stage has ``width`` input
#: channels, and width-4 training hung in 2 of 3 runs here (AMD EPYC, AVX2, 2 threads). Narrower models train in
#: the default (NCHW) layout, which takes the blocked path.
CHANNELS_LAST_MIN_WIDTH = 16


def training_memory_format(width: int) -> torch.memory_format:
    """The layout a model of ``width`` trains in: channels-last from :data:`CHANNELS_LAST_MIN_WIDTH` up."""
    return torch.channels_last if width >= CHANNELS_LAST_MIN_WIDTH else torch.contiguous_format


@attrs.define
class TrainingResult:
    """A trained model with its metrics.

    Attributes
    ----------
    model : SmallResNet
        Bare classifier (expects normalized input), eval mode.
    mean, std : tuple of float
        Normalization used in training.
    config : TrainConfig
    metrics : dict
        See :func:`evaluate_benchmark`; plus timing and configuration.
    history : list of dict
        Per-epoch loss and accuracy on the (possibly adversarial) training batches.
    """

    model: SmallResNet
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: list[str]
    input_size: int
    config: TrainConfig
    metrics: dict
    history: list[dict]

    def handle(self) -> ModelHandle:
        """A :class:`ModelHandle` on the trained model."""
        return ModelHandle(self.model, mean=self.mean, std=self.std, arch=DEMO_ARCH,
                           class_names=self.class_names, input_size=self.input_size)

    def save(self, checkpoint_path: str | os.PathLike, metrics_path: str | os.PathLike | None = None) -> None:
        """Write the checkpoint (state dict, arch, normalization, class names, metrics) and metrics JSON."""
        save_checkpoint(
            checkpoint_path, self.model, arch=DEMO_ARCH, arch_kwargs={"width": self.config.width},
            mean=self.mean, std=self.std, class_names=self.class_names, input_size=self.input_size,
            metadata={"metrics": self.metrics, "train_config": attrs.asdict(self.config)},
        )
        if metrics_path is not None:
            Path(metrics_path).parent.mkdir(parents=True, exist_ok=True)
            Path(metrics_path).write_text(json.dumps(self.metrics, indent=2))


def channel_statistics(split: BenchmarkSplit, max_images: int = 2000) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of a split's images in [0, 1]."""
    pixels = split.images[:max_images].reshape(-1, 3).astype(np.float64) / 255.0
    return tuple(pixels.mean(0).round(4).tolist()), tuple(pixels.std(0).round(4).tolist())


@torch.no_grad()
def predict_split(model: nn.Module, split: BenchmarkSplit, batch_size: int = 500) -> np.ndarray:
    """Predicted labels of a split for a model taking [0, 1] images."""
    model.eval()
    predictions = []
    for images, _ in split.batches(batch_size):
        predictions.append(model(images.contiguous(memory_format=torch.channels_last)).argmax(1).numpy())
    return np.concatenate(predictions)


def evaluate_benchmark(model: nn.Module, benchmark: PlantedBiasBenchmark, batch_size: int = 500) -> dict:
    """Clean and bias-flipped accuracy, per class, for a [0, 1]-input model.

    Returns
    -------
    dict
        ``test_accuracy``, ``flipped_accuracy``, ``per_class`` (``{name: {"test": a, "flipped": a}}``)
        and ``biased_classes`` (per cue kind: class, test and flipped accuracy, their gap, and
        ``cue_attraction`` -- the fraction of flipped images of *other* classes carrying the
        cue that are predicted as the cue's class).
    """
    names = benchmark.class_names
    result: dict[str, Any] = {"per_class": {n: {} for n in names}}
    for split_name in ("test", "flipped"):
        split = benchmark.split(split_name)
        predicted = predict_split(model, split, batch_size)
        correct = predicted == split.labels
        result[f"{split_name}_accuracy"] = float(correct.mean())
        for label, name in enumerate(names):
            result["per_class"][name][split_name] = float(correct[split.labels == label].mean())
        if split_name == "flipped":
            attraction = {}
            for kind, label in benchmark.biased_labels().items():
                carriers = (split.bias_kinds == BIAS_KINDS.index(kind)) & (split.labels != label)
                attraction[kind] = float((predicted[carriers] == label).mean()) if carriers.any() else float("nan")
    result["biased_classes"] = {
        bias.kind: {
            "class": bias.class_name,
            "test": result["per_class"][bias.class_name]["test"],
            "flipped": result["per_class"][bias.class_name]["flipped"],
            "gap": result["per_class"][bias.class_name]["test"] - result["per_class"][bias.class_name]["flipped"],
            "cue_attraction": attraction[bias.kind],
        }
        for bias in benchmark.biases
    }
    return result


def robust_accuracy(model: nn.Module, split: BenchmarkSplit, *, eps: float, steps: int, images: int,
                    batch_size: int = 250) -> float:
    """Accuracy under L2 PGD on the first ``images`` images of ``split``."""
    model.eval()
    correct = total = 0
    for x, y in split.batches(batch_size, np.arange(min(images, len(split)))):
        adversarial = l2_pgd(model, x, y, eps=eps, steps=steps)
        with torch.no_grad():
            correct += int((model(adversarial).argmax(1) == y).sum())
        total += len(y)
    return correct / max(total, 1)


@contextlib.contextmanager
def _odd_batch_guard(batch_size: int):
    """Run an odd-sized batch's forward/backward on one thread.

    torch 2.14's multi-threaded CPU backward of a strided 1x1 convolution in channels-last
    layout corrupts the heap for odd batch sizes at some shapes (e.g. the width-8 demo
    ResNet: 8 -> 16 channels on 16x16 maps), which aborts the process.  Only a last,
    smaller batch can be odd (e.g. training on a subset); even batches are untouched.
    """
    if batch_size % 2 == 0 or torch.get_num_threads() == 1:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _checked_indices(indices, n: int) -> np.ndarray:
    """Distinct train-split indices as a sorted int array; ValueError when empty or out of range."""
    indices = np.unique(np.asarray(indices, dtype=np.int64))
    if len(indices) == 0:
        raise ValueError("train_indices is empty: nothing to train on")
    if indices[0] < 0 or indices[-1] >= n:
        raise ValueError(f"train_indices must lie in 0..{n - 1}, got {indices[0]}..{indices[-1]}")
    return indices


def train_model(benchmark: PlantedBiasBenchmark, config: TrainConfig | None = None, *,
                progress: ProgressCallback | None = None, show_progress: bool = True,
                initial_state_dict: dict | None = None,
                train_indices: np.ndarray | None = None) -> TrainingResult:
    """Train :class:`SmallResNet` on ``benchmark``'s train split and evaluate it.

    Parameters
    ----------
    benchmark : PlantedBiasBenchmark
    config : TrainConfig, optional
        Defaults to :func:`standard_config`.
    progress : callable, optional
        ``progress(done, total, message)`` about every 2 % of the optimisation steps
        and once per evaluation phase.
    show_progress : bool
        Show a tqdm bar.
    initial_state_dict : dict, optional
        Weights to start from; required when ``config.warm_start`` is set.
    train_indices : array of int, optional
        Train only on these images of the train split (e.g. without artifact samples, see
        :func:`analysis.spray.unhans.unhans_retrain`); ``config.max_train_images`` then caps
        this subset.  Default: the whole split.  Normalization statistics still come from
        the whole split, so models with and without a subset see the same input scaling.

    Returns
    -------
    TrainingResult
    """
    # deferred: loads tqdm
    from tqdm.auto import tqdm

    config = config or standard_config()
    if config.warm_start and initial_state_dict is None:
        raise ValueError("config.warm_start needs initial_state_dict (e.g. the standard model's weights)")
    previous_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    # Denormal floats appear during training and make CPU convolutions ~5x slower.
    torch.set_flush_denormal(True)
    try:
        torch.manual_seed(config.seed)
        rng = np.random.default_rng(config.seed)
        train = benchmark.split("train")
        pool = np.arange(len(train)) if train_indices is None else _checked_indices(train_indices, len(train))
        n_train = len(pool) if config.max_train_images is None else min(config.max_train_images, len(pool))
        subset = np.sort(pool[rng.permutation(len(pool))[:n_train]])
        mean, std = channel_statistics(train)
        model = SmallResNet(num_classes=benchmark.num_classes, width=config.width)
        if initial_state_dict is not None:
            model.load_state_dict(initial_state_dict)
        memory_format = training_memory_format(config.width)
        model = model.to(memory_format=memory_format)
        classifier = NormalizedClassifier(model, mean, std)
        steps_per_epoch = math.ceil(n_train / config.batch_size)
        total_steps = steps_per_epoch * config.epochs
        if config.optimizer == "adam":
            optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        else:
            optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, nesterov=True,
                                        weight_decay=config.weight_decay)
        if total_steps >= 20:
            schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total_steps,
                                                           pct_start=0.25)
        else:  # too few steps for a warm-up/annealing cycle (tiny test runs)
            schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
        report_every = max(1, total_steps // 50)
        started = time.perf_counter()
        history: list[dict] = []
        bar = tqdm(total=total_steps, desc=f"train {config.flavour}", unit="step", disable=not show_progress)
        step = 0
        try:
            for epoch in range(config.epochs):
                classifier.train()
                order = subset[rng.permutation(n_train)]
                loss_sum = correct = seen = 0.0
                for images, labels in train.batches(config.batch_size, order):
                    images = images.contiguous(memory_format=memory_format)
                    with _odd_batch_guard(len(labels)):
                        if config.flavour == "robust":
                            images = l2_pgd(classifier, images, labels, eps=config.eps, steps=config.pgd_steps,
                                            step_size=config.pgd_step_size)
                        logits = classifier(images)
                        loss = F.cross_entropy(logits, labels)
                        optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                    optimizer.step()
                    schedule.step()
                    step += 1
                    loss_sum += float(loss.detach()) * len(labels)
                    correct += float((logits.argmax(1) == labels).sum())
                    seen += len(labels)
                    bar.update(1)
                    message = (f"{config.flavour} epoch {epoch + 1}/{config.epochs} "
                               f"loss {loss_sum / seen:.3f} acc {correct / seen:.3f}")
                    bar.set_postfix_str(message.split(" ", 3)[-1])
                    if progress is not None and (step % report_every == 0 or step == total_steps):
                        progress(step, total_steps + 1, message)
                history.append({"epoch": epoch + 1, "loss": loss_sum / seen, "train_accuracy": correct / seen})
        finally:
            bar.close()
        train_seconds = time.perf_counter() - started

        classifier.eval()
        if progress is not None:
            progress(total_steps, total_steps + 1, f"{config.flavour}: evaluating")
        metrics = evaluate_benchmark(classifier, benchmark)
        if config.flavour == "robust" and config.robust_eval_images > 0:
            metrics["robust_accuracy"] = robust_accuracy(
                classifier, benchmark.split("test"), eps=config.eps, steps=config.robust_eval_steps,
                images=config.robust_eval_images)
        metrics.update({
            "flavour": config.flavour,
            "arch": DEMO_ARCH,
            "width": config.width,
            "image_size": benchmark.config.image_size,
            "train_images": int(n_train),
            "epochs": config.epochs,
            "warm_start": config.warm_start,
            "eps": config.eps if config.flavour == "robust" else 0.0,
            "pgd_steps": config.pgd_steps if config.flavour == "robust" else 0,
            "train_seconds": round(train_seconds, 1),
            "total_seconds": round(time.perf_counter() - started, 1),
            "train_images_per_second": round(n_train * config.epochs / train_seconds, 1),
            "torch_threads": torch.get_num_threads(),
            # the vector ISA of the CPU kernels: the same config trains other weights under another one
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "history": history,
        })
        if progress is not None:
            progress(total_steps + 1, total_steps + 1, f"{config.flavour}: done")
        model.eval()
        return TrainingResult(model=model.to(memory_format=torch.contiguous_format), mean=mean, std=std,
                              class_names=list(benchmark.class_names), input_size=benchmark.config.image_size,
                              config=config, metrics=metrics, history=history)
    finally:
        torch.set_num_threads(previous_threads)
        torch.set_flush_denormal(False)
