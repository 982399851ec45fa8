"""``cnnfast.load_torch``: read a PyTorch ``.pth``/``.pt`` file (a state dict) without PyTorch, safely.

``torch.save`` writes a zip archive: ``<name>/data.pkl`` (a pickle of the object) and one entry
``<name>/data/<key>`` per storage (raw little-endian bytes). In the pickle, each tensor is a call
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])``
whose ``storage`` is a persistent id ``('storage', torch.FloatStorage, key, location, numel)``.

A pickle can name and call any Python callable, so loading an untrusted file with ``pickle``
can run any code. This reader's unpickler resolves only the globals a state dict needs
(``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter``,
the storage type names, and for plain values ``set``/``frozenset``/``complex`` and the latin1
``_codecs.encode`` that protocol 2 uses for bytes) to cnnfast's own functions, which build NumPy arrays; any other
global (``os.system``, ``builtins.eval``, ...) is refused with :class:`UnsafeTorchFileError`
naming it, before anything is called. Plain values (dicts, lists, tuples, numbers, strings)
need no globals and load as they are.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile

import numpy as np

__all__ = ["load_torch", "UnsafeTorchFileError"]


class UnsafeTorchFileError(pickle.UnpicklingError):
    """The file's pickle names a global that a state dict never needs (refused, never called)."""


# storage class name -> NumPy dtype (bfloat16 is read as uint16 and widened to float32)
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
    "ComplexFloatStorage": np.complex64, "ComplexDoubleStorage": np.complex128,
}


class _StorageType:
    """Stands for ``torch.FloatStorage`` etc. in the pickle: a name and a dtype, not callable."""

    __slots__ = ("name", "dtype")

    def __init__(self, name):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]

    def __call__(self, *args, **kwargs):
        raise UnsafeTorchFileError(f"load_torch: the pickle calls torch.{self.name}(...), which a state dict never "
                                   "does; refusing the file")

    def __repr__(self):
        return f"torch.{self.name}"


class _Storage:
    """A storage read from the archive: a flat array of ``numel`` elements."""

    __slots__ = ("array", "key")

    def __init__(self, array, key):
        self.array = array
        self.key = key


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError(f"load_torch: a tensor's storage is a {type(storage).__name__}, not a storage "
                                     "record; the file is corrupt")
    try:
        size = tuple(int(s) for s in size)
        stride = tuple(int(s) for s in stride)
        offset = int(storage_offset)
    except (TypeError, ValueError):
        raise pickle.UnpicklingError(f"load_torch: tensor with invalid size {size!r} / stride {stride!r} / offset "
                                     f"{storage_offset!r}") from None
    flat = storage.array
    if len(size) != len(stride) or offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise pickle.UnpicklingError(f"load_torch: tensor with invalid size {size} / stride {stride} / offset {offset}")
    numel = int(np.prod(size, dtype=np.int64))
    if numel:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= flat.size:
            raise pickle.UnpicklingError(
                f"load_torch: tensor of size {size}, stride {stride}, offset {offset} reads element {last} of storage "
                f"{storage.key!r}, which has only {flat.size} elements; the file is corrupt")
        base = flat[offset:]
        view = np.lib.stride_tricks.as_strided(base, shape=size, strides=tuple(s * flat.itemsize for s in stride),
                                               writeable=False)
        return np.array(view, copy=True, order="C")  # own, C-contiguous memory: independent of shared storages
    return np.zeros(size, dtype=flat.dtype)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


def _rebuild_parameter_with_state(data, requires_grad=False, backward_hooks=None, state=None):
    return data


class _Allowed:
    """What find_class hands the pickle for an allowed global: a fresh wrapper per lookup, with
    slots and no ``__dict__``, so a BUILD opcode aimed at it cannot alter cnnfast's functions."""

    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)


def _latin1_bytes(text, encoding="latin1"):
    """What pickle protocol 2 (torch.save's) writes for bytes: ``_codecs.encode(str, 'latin1')``.
    Only that encoding is accepted (a codec lookup by name could import modules)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafeTorchFileError(f"load_torch: refusing _codecs.encode with encoding {encoding!r:.40} (only the "
                                   "latin1 bytes encoding of pickle protocol 2 is allowed)")
    return text.encode("latin1")


def _plain(fn):
    def call(*args):
        if any(not isinstance(a, (list, tuple, str, int, float)) for a in args):
            raise UnsafeTorchFileError(f"load_torch: {fn.__name__}() called on a non-plain value")
        return fn(*args)
    return call


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _latin1_bytes,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
}
for _mod in ("builtins", "__builtin__"):  # protocol 2 writes Python 2's module name
    _ALLOWED.update({(_mod, "set"): _plain(set), (_mod, "frozenset"): _plain(frozenset),
                     (_mod, "complex"): _plain(complex)})


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, read_storage):
        super().__init__(file)
        self._read_storage = read_storage
        self._storages = {}

    def find_class(self, module, name):
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        try:
            return _Allowed(_ALLOWED[(module, name)])
        except (KeyError, TypeError):
            raise UnsafeTorchFileError(
                f"load_torch: refusing to load global '{module}.{name}': a state-dict file only needs tensors, "
                f"OrderedDicts and plain values (this file may run code if opened with torch.load(weights_only=False); "
                f"it was not executed)") from None

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage":
            raise pickle.UnpicklingError(f"load_torch: unsupported persistent id {pid!r:.80} (expected a storage record)")
        _, stype, key, _location, numel = pid
        if not isinstance(stype, _StorageType):
            raise pickle.UnpicklingError(f"load_torch: storage record with type {stype!r:.80}, not a torch storage type")
        key = str(key)
        if key not in self._storages:
            self._storages[key] = _Storage(self._read_storage(key, stype.dtype, int(numel)), key)
        return self._storages[key]


def _to_plain(obj):
    """OrderedDicts (which torch gives a ``_metadata`` attribute) -> plain dicts, recursively."""
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_to_plain(v) for v in obj)
    return obj


def _bf16_to_f32(raw):
    return (raw.astype(np.uint32) << 16).view(np.float32)


def load_torch(path):
    """Read a PyTorch state-dict file written by ``torch.save`` (zip format, torch >= 1.6) into NumPy.

    Returns what was saved with every tensor an ndarray (float32/float64/float16/int/bool keep
    their dtype; bfloat16 becomes float32; non-contiguous or offset tensors become contiguous
    copies): for a ``model.state_dict()`` a dict ``name -> ndarray`` for
    ``cnnfast_model.load_state_dict``. Never imports torch and never calls anything the file
    names except tensor reconstruction: a file whose pickle asks for another global raises
    :class:`UnsafeTorchFileError`. A damaged file raises ``ValueError`` naming the problem.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"\x80\x02" or (head[:1] == b"\x80" and not head.startswith(b"PK")):
        raise ValueError(f"load_torch: {path} is in PyTorch's legacy (pre-1.6, non-zip) format, which is not "
                         "supported; re-save it with torch.save(obj, path) from torch >= 1.6")
    if not head.startswith(b"PK"):
        raise ValueError(f"load_torch: {path} is not a PyTorch zip file (torch.save format); it starts with {head!r}")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"load_torch: {path} is not a readable zip archive (truncated or corrupted?): {e}") from None
    with zf:
        names = zf.namelist()
        pkls = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
        if len(pkls) != 1:
            raise ValueError(f"load_torch: {path} is a zip file but not a torch.save archive (expected one "
                             f"'<name>/data.pkl', found {len(pkls)})")
        prefix = pkls[0][: -len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = zf.read(prefix + "byteorder").decode("ascii", "replace").strip()
            if byteorder not in ("little", "big"):
                raise ValueError(f"load_torch: {path}: unknown byteorder {byteorder!r}")

        def read_storage(key, dtype, numel):
            entry = f"{prefix}data/{key}"
            try:
                raw = zf.read(entry)
            except KeyError:
                raise ValueError(f"load_torch: {path}: storage {entry!r} named in the pickle is missing") from None
            except (zipfile.BadZipFile, EOFError, OSError, zlib_error) as e:
                raise ValueError(f"load_torch: {path}: storage {entry!r} is unreadable (truncated?): {e}") from None
            wide = dtype == "bfloat16"
            dt = np.dtype(np.uint16 if wide else dtype)
            if numel < 0 or len(raw) < numel * dt.itemsize:
                raise ValueError(f"load_torch: {path}: storage {entry!r} holds {len(raw)} bytes, fewer than the "
                                 f"{numel} x {dt.itemsize} the pickle declares (truncated file?)")
            arr = np.frombuffer(raw, dtype=dt.newbyteorder("<" if byteorder == "little" else ">"), count=numel)
            arr = arr.astype(dt.newbyteorder("="), copy=False)
            return _bf16_to_f32(arr) if wide else arr

        try:
            data = zf.read(pkls[0])
        except (zipfile.BadZipFile, EOFError, OSError, zlib_error) as e:
            raise ValueError(f"load_torch: {path}: data.pkl is unreadable (truncated?): {e}") from None
        try:
            obj = _RestrictedUnpickler(io.BytesIO(data), read_storage).load()
        except UnsafeTorchFileError:
            raise
        except ValueError:
            raise
        except (pickle.UnpicklingError, EOFError, AttributeError, IndexError, TypeError, KeyError,
                UnicodeDecodeError) as e:
            raise ValueError(f"load_torch: {path}: the pickle in data.pkl is corrupt: {type(e).__name__}: {e}") from None
    return _to_plain(obj)


try:
    from zlib import error as zlib_error
except ImportError:  # pragma: no cover
    zlib_error = OSError
