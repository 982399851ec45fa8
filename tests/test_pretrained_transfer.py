"""cnnfast.pretrained (the shipped PP-OCRv6 backbone) and the transfer-learning demo."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import cnnfast
from cnnfast import pretrained


def test_backbone_loads_without_onnx_and_is_a_trainable_module():
    code = (
        "import sys; sys.modules['onnx'] = None; import numpy as np, cnnfast.pretrained as p; "
        "m = p.ppocr_backbone(); y = m(np.zeros((1, 3, 48, 64), np.float32)); "
        "print(y.shape, sum(q.data.size for q in m.parameters()))"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(cnnfast.__file__))] + sys.path))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(1, 120, 1, 8) 2723439"


def test_backbone_provenance_record():
    info = pretrained.ppocr_backbone_info()
    assert info["license"] == "Apache-2.0" and info["cut_at"] == "p2o.pd_op.add.65.0"
    here = os.path.dirname(pretrained.__file__)
    with open(os.path.join(here, "NOTICE")) as f:
        notice = f.read()
    assert info["source_sha256"] in notice and "Apache License" in notice
    with open(os.path.join(here, "LICENSE-Apache-2.0.txt")) as f:
        assert "Apache License" in f.read()
    assert os.path.getsize(os.path.join(here, "ppocrv6_rec_small_backbone.npz")) < 6_000_000  # float16


def test_backbone_matches_the_original_network():
    pytest.importorskip("onnx")
    from onnx_ref import ort_run, wheel_model_bytes

    data = wheel_model_bytes("ppocr_v6_rec_small")
    assert hashlib.sha256(data).hexdigest() == pretrained.ppocr_backbone_info()["source_sha256"]
    import onnx

    x = (np.random.default_rng(0).random((2, 3, 48, 80), dtype=np.float32) - 0.5) / 0.5
    ref = ort_run(onnx.load_model_from_string(data), {"x": x}, ["p2o.pd_op.add.65.0"])[0]
    got = pretrained.ppocr_backbone()(x)
    err = np.abs(got - ref).max() / np.abs(ref).max()
    assert err < 2e-2  # float16 storage of the weights


def test_backbone_split_at_last_stage_composes():
    from cnnfast.transfer import FINE_TUNE_AT, backbone_parts

    stem, last = backbone_parts()
    full = pretrained.ppocr_backbone()
    x = np.random.default_rng(1).standard_normal((2, 3, 48, 48)).astype(np.float32)
    np.testing.assert_allclose(last(stem(x)), full(x), rtol=1e-5, atol=1e-5)
    assert stem.output_names == [FINE_TUNE_AT] and last.input_names == [FINE_TUNE_AT]
    assert not any(p.requires_grad for p in stem.parameters())


def test_preprocess_and_labeled_subset():
    from cnnfast.transfer import labeled_subset, preprocess

    x = np.zeros((2, 1, 28, 28), np.float32)
    x[:, :, 10:18, 10:18] = 1
    p = preprocess(x)
    assert p.shape == (2, 3, 48, 48) and p.dtype == np.float32
    assert p.min() == -1 and p.max() == 1 and np.array_equal(p[:, 0], p[:, 2])
    y = np.repeat(np.arange(10), 30)
    idx = labeled_subset(y, 50)
    assert np.array_equal(np.bincount(y[idx]), [5] * 10)
    assert set(labeled_subset(y, 20)) <= set(idx)  # nested
    with pytest.raises(ValueError, match="multiple of 10"):
        labeled_subset(y, 25)


def test_transfer_demo_beats_training_from_scratch(capsys):
    from cnnfast import transfer

    res = transfer.main(["--labels", "50", "--test-limit", "300", "--quiet"])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(
        r"transfer: 50 labeled digits -> pretrained backbone \(frozen\) \d+\.\d% vs from scratch "
        r"\d+\.\d% on 300 held-out digits",
        line,
    ), line
    assert res["frozen"] >= 0.85
    assert res["frozen"] >= res["scratch"] + 0.10


def test_fine_tune_trains_only_the_last_stage_and_head():
    from cnnfast.datasets import load_mnist_5k
    from cnnfast.transfer import (
        backbone_parts,
        build_head,
        labeled_subset,
        run_fine_tune,
        stem_outputs,
    )

    (X, y), _ = load_mnist_5k()
    idx = labeled_subset(y, 20)
    stem, last = backbone_parts()
    stem_before = {k: v.copy() for k, v in stem.state_dict().items()}
    last_before = {k: v.copy() for k, v in last.state_dict().items()}
    mid = stem_outputs(stem, X[idx])
    acc, _ = run_fine_tune(last, build_head(), mid, y[idx], mid, y[idx], epochs=1, lr=1e-3)
    assert 0 <= acc <= 1
    for k, v in stem.state_dict().items():
        np.testing.assert_array_equal(v, stem_before[k])
    changed = [k for k, v in last.state_dict().items() if not np.array_equal(v, last_before[k])]
    assert any(k.endswith("weight") for k in changed)
    # BatchNorm kept its pretrained running statistics (eval mode during fine-tuning)
    assert not any("running" in k for k in changed)


def test_transfer_plots(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    from cnnfast import transfer

    monkeypatch.setattr(transfer, "PLOT_LABELS", (10, 20))
    res = transfer.main(["--labels", "10", "--test-limit", "100", "--plots", str(tmp_path)])
    assert sorted(os.path.basename(p) for p in res["plots"]) == ["transfer_accuracy.png", "transfer_feature_maps.png"]
    for p in res["plots"]:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "20 labels: pretrained (frozen)" in capsys.readouterr().out
