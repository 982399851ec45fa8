"""torchvision 0.29's pure-Python model code as a reference, without its compiled extension.

The wheel is fetched once with ``pip download --no-deps torchvision==0.29.1`` into a cache
folder under the system temp dir (or taken from ``$CNNFAST_TORCHVISION_WHEEL``), its Python
files unpacked, and ``torchvision`` / ``torchvision.models`` / ``torchvision.extension`` put in
``sys.modules`` as bare stubs so that only the model files (and the pure-Python ``ops`` they
use) are imported: the C++ operators (nms, roi_align, ...) are never loaded. Tests that need it
skip with the reason when torch is missing or the wheel cannot be had (offline).
"""

from __future__ import annotations

import glob
import importlib
import os
import subprocess
import sys
import tempfile
import types
import zipfile

import pytest

VERSION = "0.29.1"
ARCHS = {  # cnnfast name -> (torchvision module, builder kwargs that match cnnfast's defaults)
    "resnet18": ("resnet", {}),
    "resnet34": ("resnet", {}),
    "resnet50": ("resnet", {}),
    "mobilenet_v2": ("mobilenetv2", {}),
    "mobilenet_v3_small": ("mobilenetv3", {}),
    "efficientnet_b0": ("efficientnet", {}),
    "googlenet": ("googlenet", {"aux_logits": False, "init_weights": False}),
}
_cache = {}


def _wheel():
    env = os.environ.get("CNNFAST_TORCHVISION_WHEEL")
    if env:
        return env
    folder = os.path.join(tempfile.gettempdir(), f"cnnfast-test-torchvision-{VERSION}")
    found = glob.glob(os.path.join(folder, f"torchvision-{VERSION}-*.whl"))
    if found:
        return found[0]
    os.makedirs(folder, exist_ok=True)
    try:
        r = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", f"torchvision=={VERSION}", "-d", folder],
            capture_output=True,
            text=True,
            timeout=300,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"torchvision {VERSION} wheel unavailable (pip download failed: {e})")
    found = glob.glob(os.path.join(folder, f"torchvision-{VERSION}-*.whl"))
    if r.returncode or not found:
        pytest.skip(
            f"torchvision {VERSION} wheel unavailable (offline?): pip download said "
            f"{(r.stderr or r.stdout).strip()[-300:]!r}"
        )
    return found[0]


def _unpack(wheel):
    root = os.path.join(tempfile.gettempdir(), f"cnnfast-test-torchvision-{VERSION}", "src")
    marker = os.path.join(root, "torchvision", "models", "resnet.py")
    if not os.path.exists(marker):
        os.makedirs(root, exist_ok=True)
        staging = tempfile.mkdtemp(dir=root)  # unpack aside, then rename: safe if two runs race
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                if name.startswith("torchvision/") and name.endswith(".py"):
                    zf.extract(name, staging)
        try:
            os.replace(os.path.join(staging, "torchvision"), os.path.join(root, "torchvision"))
        except OSError:  # another run got there first
            pass
    return os.path.join(root, "torchvision")


def _install_stubs(pkg_dir):
    def package(name, path):
        mod = types.ModuleType(name)
        mod.__path__ = [path]
        sys.modules[name] = mod

    package("torchvision", pkg_dir)
    package("torchvision.models", os.path.join(pkg_dir, "models"))
    ext = types.ModuleType("torchvision.extension")
    ext._has_ops = lambda: False

    def _assert_has_ops():
        raise RuntimeError("torchvision's C++ operators are stubbed out in cnnfast's tests")

    ext._assert_has_ops = _assert_has_ops
    sys.modules["torchvision.extension"] = ext


def builders():
    """{cnnfast name: torchvision builder(num_classes=...)}; skips the test if unavailable."""
    if "builders" in _cache:
        return _cache["builders"]
    pytest.importorskip("torch")
    mod = sys.modules.get("torchvision")
    real = mod is not None and getattr(mod, "__version__", "").startswith("0.29")
    if mod is not None and not real and getattr(mod, "__file__", None) is not None:
        pytest.skip(f"another torchvision ({getattr(mod, '__version__', '?')}) is already imported")
    if not real:
        _install_stubs(_unpack(_wheel()))
    out = {}
    for name, (module, kw) in ARCHS.items():
        fn = getattr(importlib.import_module(f"torchvision.models.{module}"), name)
        out[name] = (lambda fn, kw: lambda **k: fn(**kw, **k))(fn, kw)
    _cache["builders"] = out
    return out
