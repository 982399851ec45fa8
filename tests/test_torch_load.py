"""cnnfast.load_torch: files written by real torch.save load to identical arrays without torch;
pickles that name other globals are refused without running; damaged files give clear errors.
(The model weights round trip is in test_models.py.)"""

from __future__ import annotations

import collections
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import cnnfast
from cnnfast.torch_load import UnsafeTorchFileError


def _ref(t):
    import torch

    t = t.detach()
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy()


def test_tensors_of_every_layout_and_dtype_load_identically(tmp_path):
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    base = torch.arange(120, dtype=torch.float32).reshape(4, 5, 6)
    sd = collections.OrderedDict(
        weight=torch.randn(8, 3, 3, 3, generator=g),
        transposed=base.transpose(0, 2),  # non-contiguous
        offset=base[2, 1:4],  # storage offset
        strided=base[:, ::2, 1::3],  # steps
        expanded=torch.randn(3, 1, generator=g).expand(3, 4),  # stride 0
        f64=torch.randn(3, dtype=torch.float64, generator=g),
        f16=torch.randn(5, generator=g).half(),
        bf16=torch.randn(6, generator=g).bfloat16(),
        i64=torch.tensor(7),  # 0-d, like num_batches_tracked
        i32=torch.tensor([1, -2], dtype=torch.int32),
        i8=torch.tensor([-3, 4], dtype=torch.int8),
        u8=torch.tensor([0, 255], dtype=torch.uint8),
        flags=torch.tensor([True, False, True]),
        empty=torch.zeros(0, 3),
        param=torch.nn.Parameter(torch.ones(2)),
    )
    sd["shared_a"], sd["shared_b"] = base[0], base[3, ::2]  # two views of one storage
    torch.save(sd, tmp_path / "t.pt")
    out = cnnfast.load_torch(tmp_path / "t.pt")
    assert list(out) == list(sd) and type(out) is dict
    for k, v in sd.items():
        ref = _ref(v)
        assert out[k].dtype == ref.dtype, k
        assert out[k].flags.c_contiguous and out[k].flags.owndata or out[k].size == 0, k
        np.testing.assert_array_equal(out[k], ref, err_msg=k)
    out["shared_a"][0, 0] = -1  # independent copies, not views of one buffer
    assert out["shared_b"][0, 0] != -1 or sd["shared_b"][0, 0] == -1
    assert out["bf16"].dtype == np.float32


def test_legacy_format_and_file_objects(tmp_path):
    """torch < 1.6 files (and _use_new_zipfile_serialization=False): storages after the pickle,
    storage views; a binary file object instead of a path."""
    torch = pytest.importorskip("torch")
    base = torch.arange(60, dtype=torch.float64).reshape(6, 10)
    sd = collections.OrderedDict(
        w=torch.randn(4, 3),
        view=base[2:4, 1::3],
        full=base,
        i=torch.tensor(5),
        h=torch.randn(3).half(),
        bf=torch.randn(3).bfloat16(),
        b=torch.tensor([True]),
    )
    torch.save(sd, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    assert (tmp_path / "legacy.pth").read_bytes()[:2] != b"PK"
    out = cnnfast.load_torch(tmp_path / "legacy.pth")
    for k, v in sd.items():
        np.testing.assert_array_equal(out[k], _ref(v), err_msg=k)
        assert out[k].dtype == _ref(v).dtype
    with open(tmp_path / "legacy.pth", "rb") as f:
        np.testing.assert_array_equal(cnnfast.load_torch(f)["w"], sd["w"].numpy())
    torch.save(sd, tmp_path / "zip.pth")
    with open(tmp_path / "zip.pth", "rb") as f:
        np.testing.assert_array_equal(cnnfast.load_torch(f)["view"], sd["view"].numpy())
    # a malicious legacy file is refused the same way
    payload = (
        pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
        + pickle.dumps(1001, protocol=2)
        + pickle.dumps({"little_endian": True}, protocol=2)
        + pickle.dumps(_Eval(), protocol=2)
    )
    (tmp_path / "evil_legacy.pth").write_bytes(payload)
    with pytest.raises(UnsafeTorchFileError, match="eval"):
        cnnfast.load_torch(tmp_path / "evil_legacy.pth")


def test_nested_checkpoint_with_plain_values(tmp_path):
    torch = pytest.importorskip("torch")
    ckpt = {
        "epoch": 3,
        "lr": 0.1,
        "name": "run-1",
        "ok": True,
        "none": None,
        "shape": (2, 3),
        "history": [0.5, 0.25],
        "tags": {"a", "b"},
        "z": 1 + 2j,
        "model": collections.OrderedDict(w=torch.ones(2, 2)),
        "bytes": b"ab",
    }
    torch.save(ckpt, tmp_path / "c.pth")
    out = cnnfast.load_torch(str(tmp_path / "c.pth"))
    assert {k: v for k, v in out.items() if k != "model"} == {k: v for k, v in ckpt.items() if k != "model"}
    np.testing.assert_array_equal(out["model"]["w"], np.ones((2, 2), np.float32))


def test_model_state_dict_loads_into_cnnfast_module(tmp_path):
    torch = pytest.importorskip("torch")
    tm = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 6 * 6, 2),
    )
    tm(torch.randn(2, 3, 8, 8))  # updates the running statistics
    tm.eval()
    torch.save(tm.state_dict(), tmp_path / "m.pth")
    m = cnnfast.nn.Sequential(
        cnnfast.nn.Conv2d(3, 4, 3),
        cnnfast.nn.BatchNorm2d(4),
        cnnfast.nn.ReLU(),
        cnnfast.nn.Flatten(),
        cnnfast.nn.Linear(4 * 6 * 6, 2),
    )
    m.load_state_dict(cnnfast.load_torch(tmp_path / "m.pth"))
    m.eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(m(x), tm(torch.from_numpy(x)).detach().numpy(), atol=1e-5)
    assert int(m[1].num_batches_tracked) == 1


def test_does_not_import_torch(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.ones(3)}, tmp_path / "w.pth")
    code = (
        "import sys, cnnfast; d = cnnfast.load_torch(sys.argv[1]); "
        "assert 'torch' not in sys.modules, 'torch was imported'; print(d['w'].sum())"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    r = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "w.pth")], capture_output=True, text=True, env=env, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "3.0"


def _zip_with_pickle(path, payload, extra=()):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", payload)
        zf.writestr("archive/byteorder", "little")
        for name, data in extra:
            zf.writestr(name, data)


class _System:
    def __reduce__(self):
        return (os.system, ("echo pwned > " + _System.target,))


class _Eval:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("evil,name", [(_System, "system"), (_Eval, "eval")])
def test_malicious_pickle_is_refused_without_running(tmp_path, evil, name):
    _System.target = str(tmp_path / "pwned")
    payload = pickle.dumps({"w": evil()}, protocol=2)
    _zip_with_pickle(tmp_path / "evil.pth", payload)
    with pytest.raises(UnsafeTorchFileError, match=f"refusing to load global '.*{name}'"):
        cnnfast.load_torch(tmp_path / "evil.pth")
    assert not (tmp_path / "pwned").exists()


def test_codecs_encode_only_for_latin1_bytes(tmp_path):
    payload = b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R."
    _zip_with_pickle(tmp_path / "r.pth", payload)
    with pytest.raises(UnsafeTorchFileError, match="rot13"):
        cnnfast.load_torch(tmp_path / "r.pth")


def test_allowed_global_cannot_be_abused(tmp_path):
    """A storage type called as a function, or a BUILD on an allowed global, is harmless."""
    # GLOBAL torch.FloatStorage, EMPTY_TUPLE, REDUCE: calling a storage type is refused
    payload = b"\x80\x02ctorch\nFloatStorage\n)R."
    _zip_with_pickle(tmp_path / "b.pth", payload)
    with pytest.raises(UnsafeTorchFileError, match="FloatStorage"):
        cnnfast.load_torch(tmp_path / "b.pth")
    # BUILD on the allowed rebuild function (would set attributes on it): fails, changes nothing
    from cnnfast import torch_load

    payload = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n}X\x08\x00\x00\x00__code__K\x01sb."
    _zip_with_pickle(tmp_path / "c.pth", payload)
    with pytest.raises(ValueError, match="corrupt"):
        cnnfast.load_torch(tmp_path / "c.pth")
    assert torch_load._rebuild_tensor_v2.__code__.co_name == "_rebuild_tensor_v2"


def test_damaged_files_give_clear_errors(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.randn(100, 100)}, tmp_path / "good.pth")
    data = (tmp_path / "good.pth").read_bytes()
    (tmp_path / "trunc.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="load_torch: .*trunc.pth"):
        cnnfast.load_torch(tmp_path / "trunc.pth")
    (tmp_path / "junk.pth").write_bytes(b"hello world, not a checkpoint")
    with pytest.raises(ValueError, match="not a PyTorch file"):
        cnnfast.load_torch(tmp_path / "junk.pth")
    torch.save({"w": torch.randn(100, 100)}, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    data = (tmp_path / "legacy.pth").read_bytes()
    for cut in (10, len(data) // 20, len(data) - 100):
        (tmp_path / "legacy_trunc.pth").write_bytes(data[:cut])
        with pytest.raises(ValueError, match="load_torch: .*legacy_trunc.pth"):
            cnnfast.load_torch(tmp_path / "legacy_trunc.pth")
    (tmp_path / "pickle.pth").write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(ValueError, match="not a PyTorch file"):
        cnnfast.load_torch(tmp_path / "pickle.pth")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("readme.txt", "hi")
    with pytest.raises(ValueError, match="not a torch.save archive"):
        cnnfast.load_torch(tmp_path / "other.zip")
    # a storage shorter than the pickle says
    with zipfile.ZipFile(tmp_path / "good.pth") as zin, zipfile.ZipFile(tmp_path / "short.pth", "w") as zout:
        for item in zin.infolist():
            raw = zin.read(item)
            zout.writestr(item, raw[:100] if "/data/" in item.filename else raw)
    with pytest.raises(ValueError, match="fewer than"):
        cnnfast.load_torch(tmp_path / "short.pth")
    # a garbled pickle
    _zip_with_pickle(tmp_path / "garbled.pth", b"\x80\x02}q\x00(X\x01\x00")
    with pytest.raises(ValueError, match="corrupt"):
        cnnfast.load_torch(tmp_path / "garbled.pth")
    with pytest.raises(FileNotFoundError):
        cnnfast.load_torch(tmp_path / "missing.pth")
