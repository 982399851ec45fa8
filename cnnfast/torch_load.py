"""``cnnfast.load_torch``: read a PyTorch ``.pth``/``.pt`` file (a state dict) without PyTorch, safely.

``torch.save`` writes a zip archive: ``<name>/data.pkl`` (a pickle of the object) and one entry
``<name>/data/<key>`` per storage (raw little-endian bytes). Files from torch < 1.6 (and
``_use_new_zipfile_serialization=False``) are one stream instead: a few small pickles, the
object's pickle, the list of storage keys, then each storage's element count and bytes. In the pickle, each tensor is a call
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
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ._typing import Array

    # A storage's element type: a NumPy scalar type, or "bfloat16" (widened to float32 when read).
    _DType = Any
    # read_storage(key, dtype, numel): the storage's elements now (zip format), or None (legacy: later).
    _ReadStorage = Callable[[str, _DType, int], Array | None]

__all__ = ["load_torch", "UnsafeTorchFileError"]


class UnsafeTorchFileError(pickle.UnpicklingError):
    """The file's pickle names a global that a state dict never needs (refused, never called)."""


# storage class name -> NumPy dtype (bfloat16 is read as uint16 and widened to float32)
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
    "ComplexFloatStorage": np.complex64,
    "ComplexDoubleStorage": np.complex128,
}


class _StorageType:
    """Stands for ``torch.FloatStorage`` etc. in the pickle: a name and a dtype, not callable."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]

    def __call__(self, *args: object, **kwargs: object) -> None:
        raise UnsafeTorchFileError(
            f"load_torch: the pickle calls torch.{self.name}(...), which a state dict never " "does; refusing the file"
        )

    def __repr__(self) -> str:
        return f"torch.{self.name}"


class _Storage:
    """A storage named in the pickle: ``numel`` elements of ``dtype``, read from the archive now
    (zip format) or after the pickle (legacy format, ``array`` None until then). A legacy view
    storage is ``numel`` elements of ``base`` from element ``offset``."""

    __slots__ = ("array", "key", "dtype", "numel", "base", "offset")

    def __init__(
        self,
        key: str,
        dtype: _DType,
        numel: int,
        array: Array | None = None,
        base: _Storage | None = None,
        offset: int = 0,
    ) -> None:
        self.key, self.dtype, self.numel, self.array, self.base, self.offset = key, dtype, numel, array, base, offset

    def flat(self) -> Array:
        if self.base is not None:
            return self.base.flat()[self.offset : self.offset + self.numel]
        if self.array is None:
            raise ValueError(
                f"load_torch: storage {self.key!r} is named in the pickle but its data is missing "
                "from the file (truncated?)"
            )
        return self.array


class _Pending:
    """A tensor whose elements are taken from its storage once every storage has been read."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def materialize(self) -> Array:
        flat, size, stride, offset = self.storage.flat(), self.size, self.stride, self.offset
        if not int(np.prod(size, dtype=np.int64)):
            return np.zeros(size, dtype=flat.dtype)
        last = offset + sum((n - 1) * st for n, st in zip(size, stride))
        if last >= flat.size:
            raise ValueError(
                f"load_torch: tensor of size {size}, stride {stride}, offset {offset} reads element {last} of storage "
                f"{self.storage.key!r}, which has only {flat.size} elements; the file is corrupt"
            )
        view = np.lib.stride_tricks.as_strided(
            flat[offset:], shape=size, strides=tuple(st * flat.itemsize for st in stride), writeable=False
        )
        return np.array(view, copy=True, order="C")  # own, C-contiguous memory: independent of shared storages


def _rebuild_tensor_v2(
    storage: object,
    storage_offset: int,
    size: Any,
    stride: Any,
    requires_grad: bool = False,
    backward_hooks: object = None,
    metadata: object = None,
) -> _Pending:
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError(
            f"load_torch: a tensor's storage is a {type(storage).__name__}, not a storage "
            "record; the file is corrupt"
        )
    try:
        size = tuple(int(s) for s in size)
        stride = tuple(int(s) for s in stride)
        offset = int(storage_offset)
    except (TypeError, ValueError):
        raise pickle.UnpicklingError(
            f"load_torch: tensor with invalid size {size!r} / stride {stride!r} / offset " f"{storage_offset!r}"
        ) from None
    if len(size) != len(stride) or offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise pickle.UnpicklingError(f"load_torch: tensor with invalid size {size} / stride {stride} / offset {offset}")
    return _Pending(storage, offset, size, stride)


def _rebuild_parameter(data: Any, requires_grad: bool = False, backward_hooks: object = None) -> Any:
    return data


def _rebuild_parameter_with_state(
    data: Any, requires_grad: bool = False, backward_hooks: object = None, state: object = None
) -> Any:
    return data


class _Allowed:
    """What find_class hands the pickle for an allowed global: a fresh wrapper per lookup, with
    slots and no ``__dict__``, so a BUILD opcode aimed at it cannot alter cnnfast's functions."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """What pickle protocol 2 (torch.save's) writes for bytes: ``_codecs.encode(str, 'latin1')``.
    Only that encoding is accepted (a codec lookup by name could import modules)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafeTorchFileError(
            f"load_torch: refusing _codecs.encode with encoding {encoding!r:.40} (only the "
            "latin1 bytes encoding of pickle protocol 2 is allowed)"
        )
    return text.encode("latin1")


def _plain(fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        if any(not isinstance(a, (list, tuple, str, int, float)) for a in args):
            raise UnsafeTorchFileError(f"load_torch: {fn.__name__}() called on a non-plain value")
        return fn(*args)

    return call


_ALLOWED: dict[tuple[str, str], Callable[..., Any]] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _latin1_bytes,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
}
for _mod in ("builtins", "__builtin__"):  # protocol 2 writes Python 2's module name
    _ALLOWED.update(
        {(_mod, "set"): _plain(set), (_mod, "frozenset"): _plain(frozenset), (_mod, "complex"): _plain(complex)}
    )


class _RestrictedUnpickler(pickle.Unpickler):
    """``read_storage(key, dtype, numel)`` returns the storage's array now (zip format) or None
    (legacy format: the data follows the pickle)."""

    def __init__(self, file: IO[bytes], read_storage: _ReadStorage) -> None:
        super().__init__(file)
        self._read_storage = read_storage
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        try:
            return _Allowed(_ALLOWED[(module, name)])
        except (KeyError, TypeError):
            raise UnsafeTorchFileError(
                f"load_torch: refusing to load global '{module}.{name}': a state-dict file only needs tensors, "
                f"OrderedDicts and plain values (this file may run code if opened with torch.load(weights_only=False); "
                f"it was not executed)"
            ) from None

    def persistent_load(self, pid: Any) -> _Storage:
        # zip: ('storage', type, key, location, numel); legacy: the same + view_metadata
        if not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage":
            raise pickle.UnpicklingError(
                f"load_torch: unsupported persistent id {pid!r:.80} (expected a storage record)"
            )
        stype, key, numel = pid[1], str(pid[2]), pid[4]
        if not isinstance(stype, _StorageType):
            raise pickle.UnpicklingError(
                f"load_torch: storage record with type {stype!r:.80}, not a torch storage type"
            )
        if isinstance(numel, bool) or not isinstance(numel, int) or numel < 0:
            raise pickle.UnpicklingError(f"load_torch: storage {key!r} with invalid size {numel!r:.40}")
        if key not in self.storages:
            self.storages[key] = _Storage(key, stype.dtype, numel, self._read_storage(key, stype.dtype, numel))
        storage = self.storages[key]
        view = pid[5] if len(pid) == 6 else None
        if view is not None:  # legacy view: (view_key, element offset, view numel)
            try:
                vkey, voff, vnum = str(view[0]), int(view[1]), int(view[2])
            except (TypeError, ValueError, IndexError):
                raise pickle.UnpicklingError(f"load_torch: invalid storage view {view!r:.80}") from None
            if voff < 0 or vnum < 0 or voff + vnum > storage.numel:
                raise pickle.UnpicklingError(f"load_torch: storage view {view!r:.80} outside storage {key!r}")
            return self.storages.setdefault(vkey, _Storage(vkey, stype.dtype, vnum, base=storage, offset=voff))
        return storage


def _to_plain(obj: Any) -> Any:
    """Tensors -> ndarrays, OrderedDicts (which torch gives a ``_metadata`` attribute) -> plain dicts."""
    if isinstance(obj, _Pending):
        return obj.materialize()
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_to_plain(v) for v in obj)
    return obj


def _bf16_to_f32(raw: Array) -> Array:
    return (raw.astype(np.uint32) << 16).view(np.float32)


def _decode(raw: bytes, dtype: _DType, numel: int, little: bool, where: str) -> Array:
    """Raw little/big-endian bytes -> ``numel`` elements of dtype (bfloat16 widened to float32)."""
    wide = isinstance(dtype, str) and dtype == "bfloat16"
    dt = np.dtype(np.uint16 if wide else dtype)
    if len(raw) < numel * dt.itemsize:
        raise ValueError(
            f"load_torch: {where} holds {len(raw)} bytes, fewer than the {numel} x {dt.itemsize} the "
            "pickle declares (truncated file?)"
        )
    arr = np.frombuffer(raw, dtype=dt.newbyteorder("<" if little else ">"), count=numel)
    arr = arr.astype(dt.newbyteorder("="), copy=False)
    return _bf16_to_f32(arr) if wide else arr


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_CORRUPT = (
    pickle.UnpicklingError,
    EOFError,
    AttributeError,
    IndexError,
    TypeError,
    KeyError,
    UnicodeDecodeError,
    OverflowError,
    MemoryError,
)


def _unpickle(name: str, file: IO[bytes], read_storage: _ReadStorage) -> tuple[Any, dict[str, _Storage]]:
    """Run the restricted unpickler; damage becomes a ValueError naming the file."""
    up = _RestrictedUnpickler(file, read_storage)
    try:
        return up.load(), up.storages
    except (UnsafeTorchFileError, ValueError):
        raise
    except _CORRUPT as e:
        raise ValueError(f"load_torch: {name}: the pickle is corrupt: {type(e).__name__}: {e}") from None


def _load_zip(name: str, source: IO[bytes]) -> Any:
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ValueError(f"load_torch: {name} is not a readable zip archive (truncated or corrupted?): {e}") from None
    with zf:
        names = zf.namelist()
        pkls = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
        if len(pkls) != 1:
            raise ValueError(
                f"load_torch: {name} is a zip file but not a torch.save archive (expected one "
                f"'<name>/data.pkl', found {len(pkls)})"
            )
        prefix = pkls[0][: -len("data.pkl")]

        def read(entry: str) -> bytes:
            try:
                return zf.read(entry)
            except KeyError:
                raise ValueError(f"load_torch: {name}: entry {entry!r} named in the pickle is missing") from None
            except (zipfile.BadZipFile, EOFError, OSError, zlib_error) as e:
                raise ValueError(f"load_torch: {name}: entry {entry!r} is unreadable (truncated?): {e}") from None

        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = read(prefix + "byteorder").decode("ascii", "replace").strip()
            if byteorder not in ("little", "big"):
                raise ValueError(f"load_torch: {name}: unknown byteorder {byteorder!r}")

        def read_storage(key: str, dtype: _DType, numel: int) -> Array:
            entry = f"{prefix}data/{key}"
            return _decode(read(entry), dtype, numel, byteorder == "little", f"{name}: storage {entry!r}")

        obj, _ = _unpickle(name, io.BytesIO(read(pkls[0])), read_storage)
    return obj


def _load_legacy(name: str, f: IO[bytes]) -> Any:
    """torch.save(..., _use_new_zipfile_serialization=False) and torch < 1.6: pickles of the magic
    number, the protocol version and sys_info, then the object, then the list of storage keys, then
    each storage as an int64 element count followed by its bytes."""

    def plain() -> Any:
        return _unpickle(name, f, lambda *a: None)[0]

    if plain() != _LEGACY_MAGIC:
        raise ValueError(f"load_torch: {name} is not a PyTorch file (no zip archive, no legacy magic number)")
    version = plain()
    if version != 1001:
        raise ValueError(f"load_torch: {name}: unsupported legacy protocol version {version!r}")
    info = plain()
    little = bool(info.get("little_endian", True)) if isinstance(info, dict) else True
    obj, storages = _unpickle(name, f, lambda key, dtype, numel: None)
    keys = plain()
    if not isinstance(keys, list):
        raise ValueError(f"load_torch: {name}: the storage key list is corrupt")
    for key in keys:
        st = storages.get(str(key))
        if st is None or st.base is not None:
            raise ValueError(f"load_torch: {name}: storage key {key!r} was not named in the pickle")
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"load_torch: {name}: storage {key!r} is missing (truncated file?)")
        count = int.from_bytes(head, "little" if little else "big", signed=True)
        if count != st.numel:
            raise ValueError(f"load_torch: {name}: storage {key!r} has {count} elements, the pickle says {st.numel}")
        itemsize = 2 if st.dtype == "bfloat16" else np.dtype(st.dtype).itemsize
        st.array = _decode(f.read(count * itemsize), st.dtype, count, little, f"{name}: storage {key!r}")
    return obj


def load_torch(path: str | os.PathLike[str] | IO[bytes]) -> Any:
    """Read a PyTorch state-dict file written by ``torch.save`` into NumPy, without PyTorch.

    ``path``: a file name or a binary file object. Both formats are read: the zip archive
    (torch >= 1.6's default) and the legacy stream (older files, ``_use_new_zipfile_serialization=False``).
    Returns what was saved with every tensor an ndarray (float32/float64/float16/int/bool keep
    their dtype; bfloat16 becomes float32; non-contiguous, offset or shared-storage tensors become
    independent C-contiguous copies): for a ``model.state_dict()`` a dict ``name -> ndarray`` for
    ``cnnfast_model.load_state_dict``. Never imports torch and never calls anything the file
    names except tensor reconstruction: a file whose pickle asks for another global raises
    :class:`UnsafeTorchFileError` naming it. A damaged file raises ``ValueError`` naming the problem.
    """
    if hasattr(path, "read"):
        name = getattr(path, "name", "<file object>")
        data = path.read()
    else:
        name = os.fspath(path)
        with open(name, "rb") as f:
            data = f.read()
    if data[:2] == b"PK":
        obj = _load_zip(name, io.BytesIO(data))
    elif data[:1] == b"\x80":
        obj = _load_legacy(name, io.BytesIO(data))
    else:
        raise ValueError(f"load_torch: {name} is not a PyTorch file (torch.save format); it starts with {data[:8]!r}")
    return _to_plain(obj)


try:
    from zlib import error as zlib_error
except ImportError:  # pragma: no cover
    zlib_error = OSError  # type: ignore[misc, assignment]
