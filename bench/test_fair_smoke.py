"""Smoke test of bench/fair.py (the fair, process-per-framework benchmark): CI runs it through
``pytest bench --benchmark-disable`` (it skips in timed runs). One round, one timed call, a few
small cases with every installed framework: the tables come out and every output matches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cnnfast
import fair

FAIR = Path(fair.__file__).resolve()


def _env():
    env = dict(os.environ)
    # the workers must import the same cnnfast as this process, however pytest found it
    pkg_parent = str(Path(cnnfast.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([pkg_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def test_fair_smoke_run(smoke, tmp_path):
    if not smoke:
        pytest.skip(
            "bench/fair.py runs here only as a smoke test (--benchmark-disable); for figures run "
            "python bench/fair.py"
        )
    out_json, out_md = tmp_path / "fair.json", tmp_path / "fair.md"
    proc = subprocess.run(
        [
            sys.executable,
            str(FAIR),
            "--smoke",
            "--quiet",
            "--threads",
            "2",
            "--json",
            str(out_json),
            "--output",
            str(out_md),
        ],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"fair.py failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    table = out_md.read_text()
    assert table.strip() == proc.stdout.strip()
    for heading in (
        "## a. LeNet-5",
        "## b. Co-residency",
        "## c. conv2d per pass",
        "## d. 3x3 conv",
        "## e. Inference",
        "## f. max_pool2d",
    ):
        assert heading in table, heading
    assert "targets met." in table and "CPU: " in table and "MISMATCH" not in table

    data = json.loads(out_json.read_text())
    assert not data["errors"], data["errors"]
    installed = {f for f in fair.FRAMEWORKS if data["available"][f] is None}
    assert {"cnnfast"} <= installed
    n_checked = 0
    for case in data["cases"]:
        expected = {f for f in case["frameworks"] if all(part in installed for part in f.split("+"))}
        res = data["results"][case["id"]]
        assert expected <= set(res), (case["id"], sorted(res))
        for fw in expected:
            for p in case["passes"]:
                assert res[fw][p].get("medians") or res[fw][p].get("values"), (case["id"], fw, p)
        for p, per in data["checks"][case["id"]].items():
            assert set(per) == expected, (case["id"], p, per)
            for fw, verdict in per.items():
                assert verdict.startswith("ok"), (case["id"], p, fw, verdict)
                n_checked += 1
    assert n_checked >= 10
    assert all(not t["invalid"] for t in data["targets"])


def test_checker_flags_a_wrong_output():
    """The tolerance is relative to each element's sum of |terms|: float32 rounding passes, an
    error of a few percent of the sum (an indexing or precision bug, e.g. bf16) does not."""
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((4, 8, 5, 5))
    scale = np.abs(ref) * 10 + 1.0
    case = {"kind": "conv"}
    ok = fair._compare(case, "forward", {"y": ref.astype(np.float32)}, {"y": ref}, scale, ref_is_exact=True)
    assert ok.startswith("ok"), ok
    bad = ref.copy()
    bad[1, 2, 3, 4] += 0.01 * scale[1, 2, 3, 4]
    verdict = fair._compare(case, "forward", {"y": bad.astype(np.float32)}, {"y": ref}, scale, ref_is_exact=True)
    assert verdict.startswith("MISMATCH"), verdict
    wrong_shape = fair._compare(case, "forward", {"y": ref[:2]}, {"y": ref}, scale, ref_is_exact=False)
    assert wrong_shape.startswith("MISMATCH")
    pool = {"kind": "pool"}
    assert fair._compare(pool, "forward", {"y": ref}, {"y": ref}, None, True).startswith("ok")
    assert fair._compare(pool, "forward", {"y": bad}, {"y": ref}, None, True).startswith("MISMATCH")


def test_cases_are_well_formed():
    cases = fair.build_cases()
    ids = [c["id"] for c in cases]
    assert len(ids) == len(set(ids))
    sweep = [c for c in cases if c["group"] == "conv-sweep"]
    assert len(sweep) >= 40
    ks = {c["params"]["R"] for c in sweep}
    assert {1, 3, 5, 7} <= ks
    assert {1, 2} <= {c["params"]["stride"] for c in sweep}
    assert any(c["params"]["groups"] == c["params"]["C"] > 1 for c in sweep)  # depthwise
    assert any(1 < c["params"]["groups"] < c["params"]["C"] for c in sweep)  # grouped
    chans = [c["params"][k] for c in sweep for k in ("C", "K")]
    assert min(chans) <= 3 and max(chans) >= 512
    planes = [c["params"]["H"] for c in sweep]
    assert min(planes) <= 7 and max(planes) == 224
    assert {1, 64} <= {c["params"]["N"] for c in sweep}
    for sid in fair.SMOKE_IDS:
        assert sid in ids


def test_peers_isa_caps_torch_and_openvino_only(monkeypatch):
    """--peers-isa avx2 sets the peers' documented ISA caps in their workers' environment only; the
    cnnfast workers get CNNFAST_ISA from --isa, ONNX Runtime (no run-time switch) nothing."""
    monkeypatch.setattr(fair, "BASE_ENV", {"PATH": os.environ.get("PATH", "")})
    for fw in ("torch", "openvino"):
        env = fair.worker_env(fw, 2, "avx2", "avx2")
        assert env["ONEDNN_MAX_CPU_ISA"] == "AVX2" and env["OMP_NUM_THREADS"] == "2"
        assert "CNNFAST_ISA" not in env
    assert fair.worker_env("torch", 2, "avx2", "avx2")["ATEN_CPU_CAPABILITY"] == "avx2"
    for fw in ("cnnfast", "onnxruntime"):
        env = fair.worker_env(fw, 2, "avx2", "avx2")
        assert not {"ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY"} & set(env)
    assert fair.worker_env("cnnfast", 2, "avx2", "avx2")["CNNFAST_ISA"] == "avx2"
    assert "ONEDNN_MAX_CPU_ISA" not in fair.worker_env("torch", 2, None)


def test_missing_frameworks_are_reported_not_fatal(smoke, monkeypatch, capsys):
    """A framework that is not installed gets 'not installed' in its column; the run goes on."""
    if not smoke:
        pytest.skip("smoke mode only (--benchmark-disable)")
    real = fair.available_frameworks

    def fake():
        avail = real()
        avail.update(onnxruntime="not installed", openvino="not installed", torch="not installed")
        return avail

    monkeypatch.setattr(fair, "available_frameworks", fake)
    monkeypatch.setenv("PYTHONPATH", _env()["PYTHONPATH"])
    monkeypatch.setattr(fair, "BASE_ENV", dict(os.environ))
    rc = fair.main(["--smoke", "--quiet", "--only", "infer/lenet_trunk"])
    out = capsys.readouterr().out
    assert rc == 0, out
    row = next(line for line in out.splitlines() if line.startswith("| LeNet-5 conv trunk"))
    assert row.count("not installed") == 3, row
    assert "no result" in row and "**not met**" in row


def test_onnx_nets_smoke(smoke, tmp_path):
    """Group g on the networks exported by cnnfast.onnx.export (no download): cnnfast, ONNX Runtime
    and OpenVINO run, outputs agree, the table comes out."""
    if not smoke:
        pytest.skip("smoke mode only (--benchmark-disable)")
    pytest.importorskip("onnx")
    out_json = tmp_path / "g.json"
    proc = subprocess.run(
        [sys.executable, str(FAIR), "--smoke", "--quiet", "--only", "onnx-nets/mobilenet_v2", "--json", str(out_json)],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"fair.py failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "## g. Networks from ONNX files" in proc.stdout
    data = json.loads(out_json.read_text())
    (case,) = data["cases"]
    res = data["results"][case["id"]]
    ran = {f for f in case["frameworks"] if data["available"][f] is None}
    assert "cnnfast" in ran and set(res) == ran
    verdicts = data["checks"][case["id"]]["forward"]
    assert set(verdicts) == ran and all(v.startswith("ok") for v in verdicts.values()), verdicts


def test_wheel_member_reports_why_when_unavailable(tmp_path, monkeypatch):
    """No wheel and no network: a RuntimeError saying so (the case is then reported as not run)."""

    def no_pip(*args, **kwargs):
        raise OSError("no network here")

    monkeypatch.setattr(fair.subprocess, "run", no_pip)
    with pytest.raises(RuntimeError, match="pip download rapidocr==3.10.0 failed"):
        fair.wheel_member("rapidocr", "3.10.0", "rapidocr/models/x.onnx", folder=tmp_path)
