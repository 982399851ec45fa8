"""Shared fixtures: run kernel tests on every compiled ISA this CPU supports."""

from __future__ import annotations

import os

import numpy as np
import pytest

import cnnfast

try:  # the property tests (hypothesis) draw the same examples on every run unless asked not to
    from hypothesis import settings as _hsettings

    # "derandomized" (the default here): a red CI run is a regression, not an unlucky draw whose
    # rounding error lands in the tail of a tolerance model; `pytest --hypothesis-profile=explore`
    # searches new examples (hypothesis' own default).
    _hsettings.register_profile("derandomized", derandomize=True)
    _hsettings.register_profile("explore", derandomize=False)
    _hsettings.load_profile("derandomized")
except ImportError:  # pragma: no cover - hypothesis is a test extra; its tests import it themselves
    pass

_INFO = cnnfast.runtime_info()
COMPILED_ISAS = list(_INFO["compiled_isas"])
AVAILABLE_ISAS = list(_INFO["available_isas"])


def isa_params():
    """pytest params for every compiled ISA; those this CPU lacks are skipped with the reason."""
    return [
        pytest.param(
            isa,
            id=f"isa={isa}",
            marks=()
            if isa in AVAILABLE_ISAS
            else pytest.mark.skip(reason=f"this CPU does not support {isa} (features: {_INFO['cpu_features']})"),
        )
        for isa in COMPILED_ISAS
    ]


@pytest.fixture(params=isa_params())
def isa(request):
    """Select a kernel path for the duration of a test, then restore the previous one."""
    prev = cnnfast.get_isa()
    cnnfast.set_isa(request.param)
    yield request.param
    cnnfast.set_isa(prev)


@pytest.fixture
def chain_calls(monkeypatch):
    """Records, per ``_core.dw_chain_forward`` call during the test, whether the chain ran (True) or
    declined (False)."""
    from cnnfast import _core

    taken = []
    real = _core.dw_chain_forward

    def spy(*a, **k):
        y = real(*a, **k)
        taken.append(y is not None)
        return y

    monkeypatch.setattr(_core, "dw_chain_forward", spy)
    return taken


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def pytest_report_header(config):
    return (
        f"cnnfast {cnnfast.__version__}: compiled ISAs {COMPILED_ISAS}, available {AVAILABLE_ISAS}, "
        f"selected {_INFO['selected_isa']}, threads {_INFO['num_threads']}, "
        f"CNNFAST_ISA={os.environ.get('CNNFAST_ISA', '')!r}, sanitized={_INFO.get('sanitized')}"
    )
