"""Cache keys of the benchmark file and the trained checkpoints: a stale model is never reused (issue 27).

The key of a checkpoint covers the benchmark's and the training's configs (seeds included) and the
version of the code that generates and trains (its syntax tree: comments and docstrings do not count);
the benchmark file's name covers its config and the generator's code version.
"""
from __future__ import annotations

import shutil

import attrs
import pytest

from analysis import code_version
from analysis.datasets.benchmark import BenchmarkConfig, cache_file_name
from analysis.training.pipeline import _model_stem
from analysis.training.config import robust_config, standard_config


@pytest.fixture
def copied_sources(tmp_path, monkeypatch):
    """The real training and generator sources, copied so a test can edit them; the key reads the copies."""
    copies = {}
    for path in code_version.TRAINING_SOURCES:
        copy = tmp_path / path.parent.name / path.name
        copy.parent.mkdir(exist_ok=True)
        shutil.copyfile(path, copy)
        copies[path.name] = copy
    monkeypatch.setattr(code_version, "TRAINING_SOURCES", tuple(copies[p.name] for p in code_version.TRAINING_SOURCES))
    monkeypatch.setattr(code_version, "GENERATOR_SOURCES",
                        tuple(copies[p.name] for p in code_version.GENERATOR_SOURCES))
    return copies


@pytest.mark.parametrize("edited", ["trainer.py", "adversarial.py", "demo_resnet.py", "benchmark.py"])
def test_a_change_to_the_training_code_gives_another_checkpoint_key(copied_sources, edited):
    bench, config = BenchmarkConfig(), standard_config()
    before = _model_stem("standard", bench, config)
    assert _model_stem("standard", bench, config) == before  # stable for unchanged code
    with copied_sources[edited].open("a") as handle:
        handle.write("\n# a comment only\n")
    assert _model_stem("standard", bench, config) == before  # a comment changes no weights
    with copied_sources[edited].open("a") as handle:
        handle.write("\n_CHANGED = 1\n")
    assert _model_stem("standard", bench, config) != before


def test_docstrings_and_layout_do_not_count_but_code_does():
    from analysis.code_version import code_of

    base = code_of('"""Module."""\ndef f(x):\n    """Doc."""\n    return x + 1\n')
    relaid = '"""Other text."""\n\n\ndef f(x):  # note\n    """More."""\n    return (x +\n            1)\n'
    assert code_of(relaid) == base
    assert code_of('"""Module."""\ndef f(x):\n    """Doc."""\n    return x + 2\n') != base


def test_a_change_to_the_generator_gives_another_benchmark_file(copied_sources):
    config = BenchmarkConfig()
    before = cache_file_name(config)
    with copied_sources["trainer.py"].open("a") as handle:  # training code: the benchmark's pixels are unchanged
        handle.write("\n_CHANGED = 1\n")
    assert cache_file_name(config) == before
    with copied_sources["benchmark.py"].open("a") as handle:
        handle.write("\n_CHANGED = 1\n")
    assert cache_file_name(config) != before


def test_each_seed_has_its_own_benchmark_and_checkpoints():
    stems = {(b, t): _model_stem("robust", BenchmarkConfig(seed=b), robust_config(seed=t), "parent")
             for b in (0, 1) for t in (0, 1)}
    assert len(set(stems.values())) == 4
    assert cache_file_name(BenchmarkConfig(seed=0)) != cache_file_name(BenchmarkConfig(seed=1))
    assert attrs.evolve(standard_config(), seed=1).fingerprint() != standard_config().fingerprint()
