"""The version of the code that generates the benchmark and trains its models, as a short hash.

A cached benchmark file or trained checkpoint is only valid for the code that made it: a changed
renderer, architecture, trainer or attack must give a new cache key, so a stale model is never
reused (issue 27). The hash covers the code of the modules below as Python parses it (their syntax
tree without docstrings), so an edit of a comment, a docstring or the layout keeps the cached models,
while any change to the code (or another Python version's parser) rebuilds them.
"""
from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from pathlib import Path

_ANALYSIS = Path(__file__).resolve().parent

#: Modules whose code decides the generated benchmark's pixels.
GENERATOR_SOURCES: tuple[Path, ...] = tuple(
    _ANALYSIS / "datasets" / name
    for name in ("benchmark.py", "benchmark_config.py", "backgrounds.py", "fashion_mnist.py"))
#: Modules whose code decides a trained model's weights (the benchmark's included: it feeds the training).
TRAINING_SOURCES: tuple[Path, ...] = GENERATOR_SOURCES + tuple(
    _ANALYSIS / rel for rel in ("training/trainer.py", "training/adversarial.py", "models/demo_resnet.py",
                                "models/handle.py", "models/checkpoints.py"))


def code_of(source: str) -> str:
    """The module's syntax tree without docstrings, as text: comments, docstrings and layout do not count."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def source_hash(paths: Iterable[Path]) -> str:
    """12 hex digits of the SHA-256 over each module's name and code (:func:`code_of`), in the given order."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).name.encode() + b"\0" + code_of(Path(path).read_text()).encode() + b"\0")
    return digest.hexdigest()[:12]


def generator_version() -> str:
    """Version of the benchmark generator's code."""
    return source_hash(GENERATOR_SOURCES)


def training_version() -> str:
    """Version of the code that trains the benchmark's models."""
    return source_hash(TRAINING_SOURCES)
