"""cnnfast.save / cnnfast.load: round trip, atomic writes, refusal of corrupt and pickled files."""

from __future__ import annotations

import json
import os
import pickle
import zipfile

import numpy as np
import pytest

from cnnfast import serialization
from cnnfast.serialization import load, save


@pytest.fixture
def state():
    rng = np.random.default_rng(0)
    return {
        "0.weight": rng.standard_normal((6, 1, 5, 5)).astype(np.float32),
        "0.bias": rng.standard_normal(6).astype(np.float32),
        "fc.weight": rng.standard_normal((3, 4)),  # float64 kept as float64
        "steps": np.array(7, dtype=np.int64),
    }  # 0-d array


def _same(a, b):
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        np.testing.assert_array_equal(a[k], b[k])


def test_round_trip_preserves_keys_order_dtypes_shapes(tmp_path, state):
    path = tmp_path / "w.npz"
    save(state, path)
    _same(load(path), state)
    _same(load(str(path)), state)
    # it is a plain .npz any NumPy can read, with the metadata entry
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(f["__cnnfast__"].tobytes())
    assert meta["format"] == "cnnfast.state_dict" and meta["version"] == 1
    assert meta["dtypes"]["0.weight"] == "<f4" and meta["shapes"]["0.weight"] == [6, 1, 5, 5]


def test_save_accepts_objects_with_state_dict_and_tensors(tmp_path, state):
    class Holder:  # anything with .data ndarray counts as a Tensor; anything with state_dict() as a Module
        def __init__(self, a):
            self.data = a

    class FakeModule:
        def state_dict(self):
            return {k: Holder(v) for k, v in state.items()}

    save(FakeModule(), tmp_path / "m.npz")
    _same(load(tmp_path / "m.npz"), state)


def test_save_with_a_real_module(tmp_path):
    nn = pytest.importorskip("cnnfast.nn")
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    save(model, tmp_path / "m.npz")
    other = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    other.load_state_dict(load(tmp_path / "m.npz"))
    for (k, a), (k2, b) in zip(model.state_dict().items(), other.state_dict().items()):
        assert k == k2
        np.testing.assert_array_equal(getattr(a, "data", a), getattr(b, "data", b))
    wrong = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    with pytest.raises(
        (ValueError, RuntimeError),
        match=r"0\.weight[\s\S]*\(2, 1, 3, 3\)[\s\S]*\(4, 1, 3, 3\)|"
        r"0\.weight[\s\S]*\(4, 1, 3, 3\)[\s\S]*\(2, 1, 3, 3\)",
    ):
        wrong.load_state_dict(load(tmp_path / "m.npz"))


def test_save_rejects_non_numeric_values(tmp_path):
    with pytest.raises(TypeError, match="'a' has dtype object"):
        save({"a": np.array([object()], dtype=object)}, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="Module or a state_dict"):
        save([1, 2], tmp_path / "x.npz")
    with pytest.raises(TypeError, match="keys must be str"):
        save({1: np.zeros(2)}, tmp_path / "x.npz")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("where", ["savez", "fsync", "replace"])
def test_failed_write_leaves_old_file_intact_and_no_temp(tmp_path, monkeypatch, state, where):
    path = tmp_path / "w.npz"
    save(state, path)
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError(f"simulated crash in {where}")

    if where == "savez":
        real = np.savez

        def half_then_boom(f, **arrays):  # write part of an archive, then fail
            real(f, **dict(list(arrays.items())[:1]))
            boom()

        monkeypatch.setattr(serialization.np, "savez", half_then_boom)
    elif where == "fsync":
        monkeypatch.setattr(serialization.os, "fsync", boom)
    else:
        monkeypatch.setattr(serialization.os, "replace", boom)
    new = {k: v + 1 for k, v in state.items()}
    with pytest.raises(OSError, match="simulated crash"):
        save(new, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["w.npz"]
    _same(load(path), state)


def test_failed_first_write_creates_nothing(tmp_path, monkeypatch, state):
    monkeypatch.setattr(serialization.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        save(state, tmp_path / "new.npz")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("cut", [0, 10, 0.5, -30, -1])
def test_truncated_file_is_a_clear_error(tmp_path, state, cut):
    path = tmp_path / "w.npz"
    save(state, path)
    data = path.read_bytes()
    n = int(len(data) * cut) if isinstance(cut, float) else (cut if cut >= 0 else len(data) + cut)
    path.write_bytes(data[:n])
    with pytest.raises(
        ValueError, match="not a valid cnnfast weights file: (the file is empty|the file is corrupt or truncated)"
    ):
        load(path)


def test_corrupted_bytes_are_detected(tmp_path, state):
    path = tmp_path / "w.npz"
    save(state, path)
    data = bytearray(path.read_bytes())
    data[300] ^= 0xFF  # inside the first array's payload: the zip CRC catches it
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load(path)


def test_foreign_files_are_refused(tmp_path):
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="no '__cnnfast__' metadata entry"):
        load(tmp_path / "plain.npz")
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(ValueError, match="single-array .npy"):
        load(tmp_path / "one.npy")
    (tmp_path / "t.txt").write_text("hello")
    with pytest.raises(ValueError, match="not a .npz"):
        load(tmp_path / "t.txt")
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.npz")


class _Evil:
    def __reduce__(self):  # unpickling this would create a marker file
        return (open, (_Evil.marker, "w"))


def test_pickle_payloads_are_refused_without_executing(tmp_path):
    _Evil.marker = str(tmp_path / "PWNED")
    (tmp_path / "p.pkl").write_bytes(pickle.dumps({"w": _Evil()}))
    with pytest.raises(ValueError, match="looks like a pickle"):
        load(tmp_path / "p.pkl")
    # an object array inside an otherwise valid cnnfast archive
    meta = {"format": "cnnfast.state_dict", "version": 1, "keys": ["w"], "dtypes": {"w": "|O"}, "shapes": {"w": [1]}}
    np.savez(
        tmp_path / "evil.npz",
        w=np.array([_Evil()], dtype=object),
        __cnnfast__=np.frombuffer(json.dumps(meta).encode(), np.uint8),
    )
    with pytest.raises(ValueError, match="entry 'w' contains pickled data"):
        load(tmp_path / "evil.npz")
    assert not os.path.exists(_Evil.marker)


def test_metadata_mismatch_and_newer_version(tmp_path, state):
    path = tmp_path / "w.npz"
    save(state, path)
    with zipfile.ZipFile(path) as z, np.load(path) as f:
        entries = {n: z.read(n) for n in z.namelist()}
        meta = json.loads(f["__cnnfast__"].tobytes())
        arrays = {k: f[k] for k in meta["keys"]}
    for change, msg in [
        (dict(version=99), "newer than this cnnfast supports"),
        (dict(format="other"), "metadata format is 'other'"),
        (dict(shapes={**meta["shapes"], "0.bias": [5]}), "entry '0.bias' is <f4 \\[6\\] but the metadata says"),
    ]:
        m = {**meta, **change}
        np.savez(tmp_path / "m.npz", **arrays, __cnnfast__=np.frombuffer(json.dumps(m).encode(), np.uint8))
        with pytest.raises(ValueError, match=msg):
            load(tmp_path / "m.npz")
    assert entries  # the original archive was a real zip with entries
