"""``cnnfast.save`` / ``cnnfast.load``: model weights in a safe, pickle-free ``.npz`` format.

The file is an ordinary NumPy ``.npz`` archive (``np.savez``, readable by any NumPy) with one
array per state-dict entry plus a metadata entry, ``__cnnfast__``, holding UTF-8 JSON: the format
name and version, the cnnfast version, and every key's dtype and shape. Nothing is pickled: the
archive is read with ``np.load(allow_pickle=False)``, so loading an untrusted file cannot run
code, and an object array inside it is refused.

Writes are atomic: the archive goes to a temporary file in the destination directory, is flushed
and fsync'ed, and then ``os.replace``-d over the destination, so a crash or an error mid-write
leaves either the old file or the new one, never half a file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import json
import os
import tempfile
import zipfile

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["save", "load", "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "cnnfast.state_dict"
FORMAT_VERSION = 1
_META_KEY = "__cnnfast__"
# Plain numeric/bool dtypes only: anything else (object, structured, strings) is not weights.
_ALLOWED_KINDS = "biuf"


def _to_state_dict(obj: Any) -> dict[str, NDArray[Any]]:
    """Module -> its state_dict(); dict -> itself. Values become ndarrays (Tensor -> .data)."""
    if not isinstance(obj, dict):
        state_dict = getattr(obj, "state_dict", None)
        if not callable(state_dict):
            raise TypeError(
                f"cnnfast.save: expected a Module or a state_dict (dict of str -> array), got {type(obj).__name__}"
            )
        obj = state_dict()
    out: dict[str, NDArray[Any]] = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise TypeError(f"cnnfast.save: state_dict keys must be str, got {key!r} ({type(key).__name__})")
        if key == _META_KEY:
            raise ValueError(f"cnnfast.save: the key {_META_KEY!r} is reserved for the file's metadata")
        data = getattr(value, "data", None)
        arr = data if isinstance(data, np.ndarray) and not isinstance(value, np.ndarray) else value
        if not isinstance(arr, (np.ndarray, np.generic, int, float, bool)):
            raise TypeError(
                f"cnnfast.save: value for key {key!r} must be an ndarray or a Tensor, got {type(value).__name__}"
            )
        arr = np.asarray(arr)
        if arr.dtype.kind not in _ALLOWED_KINDS:
            raise TypeError(
                f"cnnfast.save: value for key {key!r} has dtype {arr.dtype}; only bool, integer and "
                "floating-point arrays can be saved (no object arrays, no pickling)"
            )
        out[key] = arr
    return out


def save(obj: Any, path: str | os.PathLike[str]) -> None:
    """Save a Module's weights (its ``state_dict()``) or a state_dict to ``path``, atomically.

    ``obj``: a Module or a dict of str -> ndarray/Tensor. ``path``: a str or ``os.PathLike``; the
    name is used exactly as given (no extension is added; ``.npz`` is the conventional one).
    The file is replaced only once the new one is completely written and synced to disk.
    """
    state = _to_state_dict(obj)
    from . import __version__

    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "cnnfast_version": __version__,
        "keys": list(state),
        "dtypes": {k: v.dtype.str for k, v in state.items()},
        "shapes": {k: list(v.shape) for k, v in state.items()},
    }
    arrays: dict[str, Any] = dict(state)  # Any: np.savez types **kwds as its own keywords
    arrays[_META_KEY] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)

    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: str) -> None:
    """Make the rename itself durable (POSIX); harmless to skip where directories can't be opened."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def _bad(path: str, why: str) -> ValueError:
    return ValueError(f"cnnfast.load: {path!r} is not a valid cnnfast weights file: {why}")


def load(path: str | os.PathLike[str]) -> dict[str, NDArray[Any]]:
    """Load a state_dict (dict of str -> ndarray, in saved order) written by ``cnnfast.save``.

    Use ``model.load_state_dict(cnnfast.load(path))`` to restore a model. Raises ``ValueError``
    naming the problem for a corrupt or truncated file, a file that is not a cnnfast weights file,
    or one that contains pickled data (which is never unpickled).
    """
    path = os.fspath(path)
    with open(path, "rb") as f:  # FileNotFoundError etc. propagate unchanged
        magic = f.read(6)
        if not magic.startswith(b"PK\x03\x04"):
            if magic.startswith(b"\x93NUMPY"):
                raise _bad(path, "it is a single-array .npy file, not a .npz archive")
            if magic[:1] == b"\x80":
                raise _bad(
                    path, "it looks like a pickle (e.g. from torch.save or pickle.dump); cnnfast never unpickles"
                )
            if not magic:
                raise _bad(path, "the file is empty")
            raise _bad(path, f"not a .npz (zip) archive (starts with {magic!r})")
        f.seek(0)
        # We own the file object, so it is closed on every path, including a corrupt archive.
        try:
            archive = np.load(f, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise _bad(path, f"the file is corrupt or truncated ({type(e).__name__}: {e})") from None
        return _read_archive(path, archive)


def _read_archive(path: str, archive: Any) -> dict[str, NDArray[Any]]:
    with archive:
        try:
            if _META_KEY not in archive.files:
                raise _bad(
                    path, f"no {_META_KEY!r} metadata entry (an .npz from elsewhere? it has keys {archive.files[:8]})"
                )
            try:
                meta = json.loads(archive[_META_KEY].tobytes().decode("utf-8"))
                keys, dtypes, shapes = meta["keys"], meta["dtypes"], meta["shapes"]
            except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
                raise _bad(path, f"unreadable metadata ({type(e).__name__}: {e})") from None
            if meta.get("format") != FORMAT_NAME:
                raise _bad(path, f"metadata format is {meta.get('format')!r}, expected {FORMAT_NAME!r}")
            if not isinstance(meta.get("version"), int) or meta["version"] > FORMAT_VERSION:
                raise _bad(
                    path,
                    f"format version {meta.get('version')!r} is newer than this cnnfast supports "
                    f"({FORMAT_VERSION}); upgrade cnnfast",
                )
            missing = [k for k in keys if k not in archive.files]
            extra = [k for k in archive.files if k != _META_KEY and k not in keys]
            if missing or extra:
                raise _bad(path, f"entries do not match the metadata (missing {missing}, unexpected {extra})")
            out = {}
            for k in keys:
                try:
                    arr = archive[k]
                except ValueError as e:
                    if "pickle" in str(e):
                        raise _bad(
                            path,
                            f"entry {k!r} contains pickled data (an object array), which cnnfast "
                            "never loads (allow_pickle=False)",
                        ) from None
                    raise _bad(path, f"entry {k!r} is unreadable ({e})") from None
                if arr.dtype.str != dtypes.get(k) or list(arr.shape) != shapes.get(k):
                    raise _bad(
                        path,
                        f"entry {k!r} is {arr.dtype.str} {list(arr.shape)} but the metadata says "
                        f"{dtypes.get(k)} {shapes.get(k)}",
                    )
                out[k] = arr
            return out
        except ValueError:
            raise
        except (OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
            raise _bad(path, f"the file is corrupt or truncated ({type(e).__name__}: {e})") from None
