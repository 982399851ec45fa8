"""Static checks as tests: the _core stub lists every function the extension exports; `mypy -p
cnnfast` and `ruff check` are clean (both run when installed -- the test extra installs them --
and only from a source checkout, whose pyproject.toml holds their settings)."""

from __future__ import annotations

import ast
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import cnnfast
from cnnfast import _core

PKG = pathlib.Path(cnnfast.__file__).parent
ROOT = PKG.parent


def _checkout_root() -> pathlib.Path:
    """The source checkout this cnnfast was imported from (editable or PYTHONPATH), else skip."""
    pyproject = ROOT / "pyproject.toml"
    if not pyproject.is_file() or "[tool.mypy]" not in pyproject.read_text():
        pytest.skip("cnnfast is not imported from a source checkout (no pyproject.toml with the settings)")
    return ROOT


def test_core_stub_lists_every_exported_function():
    stub = ast.parse((PKG / "_core.pyi").read_text())
    stubbed = {n.name for n in stub.body if isinstance(n, ast.FunctionDef)}
    exported = {n for n in dir(_core) if not n.startswith("__")}
    assert stubbed == exported, (
        f"in _core but not in _core.pyi: {sorted(exported - stubbed)}; "
        f"in _core.pyi but not in _core: {sorted(stubbed - exported)}"
    )


def test_package_is_marked_typed():
    assert (PKG / "py.typed").is_file()


def test_mypy_is_clean():
    pytest.importorskip("mypy")
    root = _checkout_root()
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "-p", "cnnfast"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "MYPY_FORCE_COLOR": "0"},
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_is_clean():
    ruff = shutil.which("ruff") or shutil.which("ruff", path=os.path.dirname(sys.executable))
    if ruff is None:
        pytest.skip("ruff is not installed")
    root = _checkout_root()
    r = subprocess.run([ruff, "check", "--no-cache", "."], cwd=root, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
