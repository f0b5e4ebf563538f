"""The build's import contracts (pyproject.toml ``[tool.importlinter]``) and ``make lint`` inside ``make test``.

Each broken case copies the packages' sources into a temporary directory, adds one forbidden import and runs
``lint-imports`` there against the repository's own contract file: the check must fail and name the contract.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PACKAGES = ["annotation", "analysis", "workers", "studio", "demo", "salient_studio"]


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={"PATH": str(BIN), "PYTHONPATH": str(cwd)})


@pytest.fixture
def copy(tmp_path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def add_import(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_repository_keeps_its_contracts():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    # the models layer importing a view (a view's import of a write turned upside down)
    ("annotation/models.py", "from annotation.views_researcher import study_detail  # noqa",
     "Layers: views, API and commands -> reports -> services -> selectors -> models BROKEN"),
    # a selector importing a write
    ("annotation/selectors/studies.py", "from annotation.services.studies import study_create  # noqa",
     "Layers: views, API and commands -> reports -> services -> selectors -> models BROKEN"),
    ("analysis/exports.py", "import django.db  # noqa", "analysis/ is a library: no platform, no Django BROKEN"),
    ("annotation/task_kinds/base.py", "from annotation import services  # noqa",
     "Task kinds and crowd-site adapters touch no views, services or reports BROKEN"),
])
def test_a_forbidden_import_breaks_the_build(copy, module, line, contract):
    add_import(copy / module, line)
    result = lint_imports(copy)
    assert result.returncode != 0
    assert contract in result.stdout


def test_make_test_runs_the_lint_first():
    plan = subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    lines = plan.splitlines()
    ruff = next(i for i, s in enumerate(lines) if "ruff check" in s)
    contracts = next(i for i, s in enumerate(lines) if "lint-imports" in s)
    tests = next(i for i, s in enumerate(lines) if "pytest" in s)
    assert ruff < tests and contracts < tests


def test_ruff_refuses_a_line_past_120_columns(tmp_path):
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "wide.py").write_text(f"WIDE = {'x' * 120!r}\n")
    (tmp_path / "narrow.py").write_text(f"NARROW = {'x' * 100!r}\n")
    result = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "."], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0
    assert "wide.py" in result.stdout and "E501" in result.stdout and "narrow.py" not in result.stdout
