"""Peak memory of one conv2d call: RSS high-water-mark delta, each framework in a fresh subprocess.

Group "memory-conv2d-<pass>-<case>"; the number that matters is extra_info["rss_delta_bytes"]
(output included; output_bytes says how much of it is the result itself). The timing pytest-
benchmark records is the subprocess's wall time (interpreter start and imports included) and
means nothing. The probe is bench/_memprobe.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from _suite import BENCH_DIR, CONV_BY_NAME

# (case, pass, impls). The ResNet stem at N=16 is the headline (a 7x7 kernel over 3 channels:
# im2col would be 49x the input); the 3x3 64-channel layer covers all three passes.
CASES = [
    ("resnet_stem_n16", "forward", ("cnnfast", "torch", "numpy")),
    *[
        ("resnet_3x3_64x56_n16", pass_, ("cnnfast", "torch"))
        for pass_ in ("forward", "backward_input", "backward_weight")
    ],
]
PARAMS = [
    pytest.param(case, pass_, impl, id=f"{pass_}-{case}-{impl}") for case, pass_, impls in CASES for impl in impls
]
SMOKE = {("resnet_stem_n16", "forward", "cnnfast"), ("resnet_stem_n16", "forward", "torch")}


def _probe(impl, pass_, case, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    proc = subprocess.run(
        [sys.executable, str(BENCH_DIR / "_memprobe.py"), impl, pass_, case, str(threads)],
        capture_output=True,
        text=True,
        env=env,
        cwd=BENCH_DIR,
        timeout=600,
    )
    assert proc.returncode == 0, f"memory probe {impl} {pass_} {case} failed:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case, pass_, impl", PARAMS)
def test_conv2d_peak_rss(benchmark, threads, smoke, case, pass_, impl):
    if impl == "torch":
        pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")
    if impl == "numpy":
        pytest.importorskip("threadpoolctl", reason="the NumPy probe caps BLAS threads with threadpoolctl")
    if smoke and (case, pass_, impl) not in SMOKE:
        pytest.skip("smoke mode measures only the ResNet stem forward (one fresh process per framework)")
    results = []
    benchmark.group = f"memory-conv2d-{pass_}-{case}"
    benchmark.pedantic(lambda: results.append(_probe(impl, pass_, case, threads)), rounds=1, iterations=1)
    r = results[-1]
    benchmark.extra_info.update(
        op="memory",
        pass_=pass_,
        case=case,
        impl=impl,
        threads=threads,
        rss_delta_bytes=r["rss_delta_bytes"],
        output_bytes=r["output_bytes"],
        exact=r["exact"],
        label=CONV_BY_NAME[case].label,
    )
    # A large output (glibc mmaps blocks >= 32 MB fresh) must show up in the delta: a probe that
    # measured nothing would pass any target. Small outputs may reuse heap pages already resident.
    if r["exact"] and r["output_bytes"] >= 32 << 20:
        assert r["rss_delta_bytes"] >= 0.9 * r["output_bytes"], r
