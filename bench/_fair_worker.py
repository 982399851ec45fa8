"""One framework, one fresh process: the worker that bench/fair.py starts for every timing.

    python bench/_fair_worker.py JOB.json RESULT.json

JOB.json (written by the driver) names one framework, a thread count, the timing policy and a
list of cases, each with its shared .npz of weights and inputs. The worker imports only its own
framework (plus NumPy), sets its threads through the framework's API, runs every case: one
untimed call whose output is kept (and saved to a .npy/.npz when the job asks for outputs),
``warmup`` more untimed calls, then timed calls with time.perf_counter until ``min_iters`` and
``budget`` seconds are both reached (at most ``max_iters``), and writes the median of each pass
to RESULT.json. A failing case is reported (traceback) and the next one runs.

Frameworks: ``cnnfast``, ``torch``, ``onnxruntime``, ``openvino`` (the last two read the ONNX file
the driver wrote), and two co-resident variants for the LeNet training step:
``cnnfast+torch`` (torch imported first, one torch step between cnnfast steps, cnnfast timed) and
``torch+cnnfast`` (cnnfast imported first, one cnnfast step between torch steps, torch timed).

Nothing here imports cnnfast or torch at module level; tests/reference.py is not needed either.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback

import numpy as np

CONV_KERNEL_KEYS = {
    "forward": "conv2d_fwd_f32",
    "grad_input": "conv2d_bwd_input_f32",
    "grad_weight": "conv2d_bwd_weight_f32",
}


# ----------------------------------------------------------------------------------------------
# frameworks: import and set threads
class Env:
    """The imported frameworks of this process and their versions."""

    def __init__(self, framework: str, threads: int):
        self.framework = framework
        self.threads = threads
        self.versions: dict = {}
        self.info: dict = {}
        order = {"cnnfast+torch": ("torch", "cnnfast"), "torch+cnnfast": ("cnnfast", "torch")}.get(
            framework, (framework,)
        )
        for name in order:
            getattr(self, "_import_" + name)()

    def _import_cnnfast(self):
        import cnnfast
        import cnnfast.nn
        import cnnfast.optim

        cnnfast.set_num_threads(self.threads)
        self.cnnfast = cnnfast
        info = cnnfast.runtime_info()
        self.versions["cnnfast"] = cnnfast.__version__
        self.info.update(
            isa=cnnfast.get_isa(),
            available_isas=list(info.get("available_isas", [])),
            cnnfast_threads=cnnfast.get_num_threads(),
            openmp=info.get("openmp"),
            kernels=dict(info.get("kernels", {})),
        )

    def _import_torch(self):
        import torch

        torch.set_num_threads(self.threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set, or inter-op work already ran
            pass
        self.torch = torch
        self.versions["torch"] = torch.__version__
        self.info["torch_threads"] = torch.get_num_threads()
        self.info["torch_isa"] = torch.backends.cpu.get_cpu_capability()

    def _import_onnxruntime(self):
        import onnxruntime

        self.ort = onnxruntime
        self.versions["onnxruntime"] = onnxruntime.__version__

    def _import_openvino(self):
        import openvino

        self.ov = openvino
        self.versions["openvino"] = openvino.get_version()


# ----------------------------------------------------------------------------------------------
# models from the driver's layer list
def _cnnfast_model(cf, layers, W, absolute=False):
    nn = cf.nn
    mods = []
    for L in layers:
        op = L["op"]
        if op == "conv":
            m = nn.Conv2d(L["cin"], L["cout"], L["k"], stride=L["stride"], padding=L["pad"], groups=L["groups"])
        elif op == "linear":
            m = nn.Linear(L["cin"], L["cout"])
        elif op == "relu":
            m = nn.ReLU()
        elif op == "maxpool":
            m = nn.MaxPool2d(L["k"], L["stride"], L["pad"])
        elif op == "flatten":
            m = nn.Flatten()
        else:
            raise ValueError(f"unknown layer {op!r}")
        if op in ("conv", "linear"):
            w, b = W[L["w"]], W[L["b"]]
            np.copyto(m.weight.data, np.abs(w) if absolute else w)
            np.copyto(m.bias.data, np.abs(b) if absolute else b)
        mods.append(m)
    return nn.Sequential(*mods)


def _torch_model(torch, layers, W):
    nn = torch.nn
    mods = []
    for L in layers:
        op = L["op"]
        if op == "conv":
            m = nn.Conv2d(L["cin"], L["cout"], L["k"], stride=L["stride"], padding=L["pad"], groups=L["groups"])
        elif op == "linear":
            m = nn.Linear(L["cin"], L["cout"])
        elif op == "relu":
            m = nn.ReLU()
        elif op == "maxpool":
            m = nn.MaxPool2d(L["k"], L["stride"], L["pad"])
        elif op == "flatten":
            m = nn.Flatten()
        else:
            raise ValueError(f"unknown layer {op!r}")
        if op in ("conv", "linear"):
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(W[L["w"]]))
                m.bias.copy_(torch.from_numpy(W[L["b"]]))
        mods.append(m)
    return nn.Sequential(*mods)


# ----------------------------------------------------------------------------------------------
# cases: each returns a list of (pass, fn, to_arrays, scale_fn); to_arrays(first output) -> dict of
# ndarrays to save; scale_fn (cnnfast only, may be None) -> dict of "sum of |terms|" arrays.
def _lenet_train_step_cnnfast(cf, case, W):
    model = _cnnfast_model(cf, case["layers"], W)
    p = case["params"]
    opt = cf.optim.SGD(model.parameters(), lr=p["lr"], momentum=p["momentum"])
    loss_fn = cf.nn.CrossEntropyLoss()
    x, y = cf.Tensor(W["x"]), W["y"]

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    def arrays(loss):
        out = {"loss": np.asarray(loss.data, np.float64).reshape(1)}
        out.update({f"p{i}": np.array(q.data, copy=True) for i, q in enumerate(model.parameters())})
        return out

    return step, arrays


def _lenet_train_step_torch(torch, case, W):
    model = _torch_model(torch, case["layers"], W)
    p = case["params"]
    opt = torch.optim.SGD(model.parameters(), lr=p["lr"], momentum=p["momentum"])
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y = torch.from_numpy(W["x"]), torch.from_numpy(W["y"])

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    def arrays(loss):
        out = {"loss": np.asarray(loss.item(), np.float64).reshape(1)}
        out.update({f"p{i}": q.detach().numpy().copy() for i, q in enumerate(model.parameters())})
        return out

    return step, arrays


def case_lenet_train(env, case, W):
    fw = env.framework
    if fw == "cnnfast":
        step, arrays = _lenet_train_step_cnnfast(env.cnnfast, case, W)
    elif fw == "torch":
        step, arrays = _lenet_train_step_torch(env.torch, case, W)
    elif fw in ("cnnfast+torch", "torch+cnnfast"):
        # Both models live in this process; the other framework's step runs, untimed, before every
        # call of the timed one (so the timed framework always runs right after the other's work).
        c_step, c_arrays = _lenet_train_step_cnnfast(env.cnnfast, case, W)
        t_step, t_arrays = _lenet_train_step_torch(env.torch, case, W)
        timed, other, arrays = (c_step, t_step, c_arrays) if fw == "cnnfast+torch" else (t_step, c_step, t_arrays)
        return [("step", timed, arrays, None, other)]
    else:
        raise ValueError(f"{fw} has no training step")
    return [("step", step, arrays, None, None)]


def case_net(env, case, W):
    """Inference of a layer stack in eval mode (the LeNet forward, or a conv/ReLU/pool stack)."""
    fw, x = env.framework, W["x"]
    if fw == "cnnfast":
        cf = env.cnnfast
        model = _cnnfast_model(cf, case["layers"], W).eval()

        def fn():
            with cf.no_grad():
                return model(x)

        def scale():  # the same stack on |x| with |weights|: every output's sum of |terms|
            absm = _cnnfast_model(cf, case["layers"], W, absolute=True).eval()
            with cf.no_grad():
                return {"y": np.asarray(absm(np.abs(x)))}

        return [("forward", fn, lambda y: {"y": np.array(y, copy=True)}, scale, None)]
    if fw == "torch":
        torch = env.torch
        model = _torch_model(torch, case["layers"], W).eval()
        xt = torch.from_numpy(x)

        def fn():
            with torch.inference_mode():
                return model(xt)

        return [("forward", fn, lambda y: {"y": y.numpy().copy()}, None, None)]
    if fw in ("onnxruntime", "openvino"):
        return [("forward", _runtime_fn(env, case["onnx"], x), lambda y: {"y": np.array(y, copy=True)}, None, None)]
    raise ValueError(f"{fw} has no inference path")


def _runtime_fn(env, onnx_path, x, static_shape=False):
    """A call running the ONNX file on x with ONNX Runtime or OpenVINO (env.framework), first output.
    static_shape: OpenVINO compiles the model for x's shape (the files of g have free dims)."""
    if env.framework == "onnxruntime":
        ort = env.ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = env.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: x}
        return lambda: sess.run(None, feed)[0]
    ov = env.ov
    core = ov.Core()
    # f32 explicitly: on CPUs with AMX / AVX512-BF16 OpenVINO's default precision is bf16.
    config = {"INFERENCE_NUM_THREADS": env.threads, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    model = core.read_model(onnx_path)
    if static_shape:
        model.reshape(list(x.shape))
    compiled = core.compile_model(model, "CPU", config)
    req = compiled.create_infer_request()

    def fn():
        req.infer({0: x}, share_inputs=True)
        return req.get_output_tensor(0).data

    return fn


def cnnfast_module(cf, case):
    """The cnnfast module of an ONNX-file case: ``cnnfast.onnx.load(file)`` for files from elsewhere,
    or the cnnfast.models network the file was exported from (its weights from case["state"])."""
    src = case["params"]["source"]
    if "model" in src:
        import cnnfast.models

        model = getattr(cnnfast.models, src["model"])()
        with np.load(case["state"]) as z:
            model.load_state_dict({k: z[k] for k in z.files})
        return model
    try:
        from cnnfast import onnx as cf_onnx

        load = cf_onnx.load
    except (ImportError, AttributeError) as e:
        raise RuntimeError(f"this cnnfast has no cnnfast.onnx.load ({e})") from None
    return load(case["onnx"])


def case_onnxnet(env, case, W, factory=cnnfast_module):
    """A network from an ONNX file: cnnfast runs the module ``factory(cnnfast, case)`` builds, in eval
    mode; ONNX Runtime and OpenVINO run the file."""
    x = W["x"]
    if env.framework == "cnnfast":
        cf = env.cnnfast
        model = factory(cf, case).eval()

        def fn():
            with cf.no_grad():
                y = model(x)
            return y[0] if isinstance(y, (tuple, list)) else y

        return [("forward", fn, lambda y: {"y": np.array(y, copy=True)}, None, None)]
    if env.framework in ("onnxruntime", "openvino"):
        return [
            (
                "forward",
                _runtime_fn(env, case["onnx"], x, static_shape=True),
                lambda y: {"y": np.array(y, copy=True)},
                None,
                None,
            )
        ]
    raise ValueError(f"{env.framework} has no path for ONNX files")


def export_model(spec_path):
    """``--export SPEC.json``: build a cnnfast.models network (seeded weights, BatchNorm statistics
    randomised as a trained network's would be), save its state dict and export it to ONNX."""
    with open(spec_path) as f:
        spec = json.load(f)
    import cnnfast
    import cnnfast.models
    from cnnfast.onnx_export import export

    cnnfast.manual_seed(spec["seed"])
    model = getattr(cnnfast.models, spec["model"])()
    rng = np.random.default_rng(spec["seed"])
    for m in model.modules():
        if isinstance(m, cnnfast.nn.BatchNorm2d):
            m.running_mean[...] = rng.normal(0, 0.1, m.num_features)
            m.running_var[...] = rng.uniform(0.5, 1.5, m.num_features)
            m.weight.data[...] = rng.uniform(0.5, 1.5, m.num_features)
            m.bias.data[...] = rng.normal(0, 0.1, m.num_features)
    model.eval()
    np.savez(spec["state"], **{k: np.asarray(v) for k, v in model.state_dict().items()})
    with np.load(spec["data"]) as z:
        x = z["x"]
    export(model, spec["onnx"], x)
    return 0


def case_conv(env, case, W):
    p = case["params"]
    s, pad, g = p["stride"], p["pad"], p["groups"]
    x, w, b, gy = W["x"], W["w"], W["b"], W["gy"]
    fw = env.framework
    if fw == "cnnfast":
        cf = env.cnnfast
        fns = {
            "forward": lambda: cf.conv2d(x, w, b, s, pad, 1, g),
            "grad_input": lambda: cf.conv2d_input(x.shape, w, gy, s, pad, 1, g),
            "grad_weight": lambda: cf.conv2d_weight(x, w.shape, gy, s, pad, 1, g),
        }
        ax, aw, ab, agy = np.abs(x), np.abs(w), np.abs(b), np.abs(gy)
        scales = {
            "forward": lambda: cf.conv2d(ax, aw, ab, s, pad, 1, g),
            "grad_input": lambda: cf.conv2d_input(x.shape, aw, agy, s, pad, 1, g),
            "grad_weight": lambda: cf.conv2d_weight(ax, w.shape, agy, s, pad, 1, g),
        }
        return [
            (k, fns[k], lambda y: {"y": np.array(y, copy=True)}, (lambda k=k: {"y": np.asarray(scales[k]())}), None)
            for k in case["passes"]
        ]
    if fw == "torch":
        torch = env.torch
        xt, wt, bt, gyt = (torch.from_numpy(a) for a in (x, w, b, gy))
        st, pt = [s, s], [pad, pad]
        F = torch.nn.functional
        # aten.convolution_backward is what autograd (and torch.nn.grad.conv2d_input/_weight) call;
        # the output mask makes it compute only the requested gradient, as cnnfast does.
        cb = torch.ops.aten.convolution_backward

        def fwd():
            with torch.no_grad():
                return F.conv2d(xt, wt, bt, st, pt, 1, g)

        fns = {
            "forward": fwd,
            "grad_input": lambda: cb(gyt, xt, wt, None, st, pt, [1, 1], False, [0, 0], g, [True, False, False])[0],
            "grad_weight": lambda: cb(gyt, xt, wt, None, st, pt, [1, 1], False, [0, 0], g, [False, True, False])[1],
        }
        return [(k, fns[k], lambda y: {"y": y.numpy().copy()}, None, None) for k in case["passes"]]
    raise ValueError(f"{fw} has no conv2d path")


def case_pool(env, case, W):
    p = case["params"]
    k, s, pad = p["k"], p["stride"], p["pad"]
    x, gy = W["x"], W["gy"]
    fw = env.framework
    if fw == "cnnfast":
        cf = env.cnnfast
        idx = cf.max_pool2d(x, k, s, pad, return_indices=True)[1]  # its own indices for its backward
        fns = {
            "forward": lambda: (cf.max_pool2d(x, k, s, pad),),
            "forward_indices": lambda: cf.max_pool2d(x, k, s, pad, return_indices=True),
            "backward": lambda: (cf.max_pool2d_backward(gy, x.shape, idx, k, s, pad),),
        }
        conv = np.asarray
    elif fw == "torch":
        torch = env.torch
        F = torch.nn.functional
        xt, gyt = torch.from_numpy(x), torch.from_numpy(gy)
        with torch.no_grad():
            it = F.max_pool2d(xt, k, s, pad, return_indices=True)[1]
        bwd = torch.ops.aten.max_pool2d_with_indices_backward  # what autograd calls

        def fwd():
            with torch.no_grad():
                return (F.max_pool2d(xt, k, s, pad),)

        def fwd_idx():
            with torch.no_grad():
                return F.max_pool2d(xt, k, s, pad, return_indices=True)

        fns = {
            "forward": fwd,
            "forward_indices": fwd_idx,
            "backward": lambda: (bwd(gyt, xt, [k, k], [s, s], [pad, pad], [1, 1], False, it),),
        }

        def conv(t):
            return t.numpy()
    else:
        raise ValueError(f"{fw} has no max_pool2d path")

    def arrays(out):
        return {("y", "idx")[i]: np.array(conv(t), copy=True) for i, t in enumerate(out)}

    return [(name, fns[name], arrays, None, None) for name in case["passes"]]


def case_peak(env, case, W):
    """FMA peak of the ISA cnnfast uses, on the job's threads (csrc/bench/fma_peak_*.cpp)."""
    cf = env.cnnfast
    isa = cf.get_isa()
    seconds = case["params"]["seconds"]
    if isa not in ("avx2", "avx512"):
        return {"fma": {"value": None, "note": f"no FMA microbenchmark for ISA {isa!r}"}}
    vals = [cf._core._bench_fma_peak(isa, env.threads, seconds) for _ in range(case["params"]["repeats"])]
    return {"fma": {"value": max(vals), "values": vals, "isa": isa}}


CASES = {
    "lenet_train": case_lenet_train,
    "net": case_net,
    "conv": case_conv,
    "pool": case_pool,
    "peak": case_peak,
    "onnxnet": case_onnxnet,
}


# ----------------------------------------------------------------------------------------------
def _measure(fn, other, timing):
    """Yields the first call's output, then the timed calls' seconds. ``other`` (co-residency) runs,
    untimed, before every call. Calls slower than timing["slow"] skip the extra warm-up; timing
    stops at min_iters once the budget is spent, or after max_time seconds (at least one call)."""
    if other is not None:
        other()
    t0 = time.perf_counter()
    first = fn()
    first_dt = time.perf_counter() - t0
    yield first  # the caller converts it to arrays before any further call can change it
    for _ in range(timing["warmup"] if first_dt < timing["slow"] else 0):
        if other is not None:
            other()
        fn()
    times = []
    total = 0.0
    while len(times) < timing["min_iters"] or (total < timing["budget"] and len(times) < timing["max_iters"]):
        if times and total >= timing["max_time"]:
            break
        if other is not None:
            other()
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        times.append(dt)
        total += dt
    yield times


def run_case(env, case, job):
    W = np.load(case["data"]) if case.get("data") else {}
    W = {k: W[k] for k in W.files} if hasattr(W, "files") else W
    made = CASES[case["kind"]](env, case, W)
    if isinstance(made, dict):  # peak: values, not timings
        return made
    results = {}
    for name, fn, to_arrays, scale_fn, other in made:
        gen = _measure(fn, other, job["timing"])
        first = next(gen)
        r = {}
        if job["save_outputs"]:
            stem = os.path.join(job["outdir"], f"{case['slug']}.{name}.{env.framework}")
            np.savez(stem + ".npz", **to_arrays(first))
            r["output"] = stem + ".npz"
            if scale_fn is not None:
                np.savez(stem + ".scale.npz", **scale_fn())
                r["scale"] = stem + ".scale.npz"
        del first
        times = next(gen)
        r.update(median=float(np.median(times)), n=len(times), min=float(min(times)))
        if env.framework == "cnnfast" and case["kind"] == "conv":
            r["kernel"] = (env.cnnfast.runtime_info().get("last_kernels") or {}).get(CONV_KERNEL_KEYS[name])
        results[name] = r
    return results


def main(argv):
    job_path, result_path = argv
    with open(job_path) as f:
        job = json.load(f)
    out = {"framework": job["framework"], "pid": os.getpid(), "cases": {}}
    try:
        env = Env(job["framework"], job["threads"])
    except Exception as e:  # noqa: BLE001 - reported to the driver, which marks the rows
        out["error"] = f"{type(e).__name__}: {e}"
        out["traceback"] = traceback.format_exc()
    else:
        out.update(versions=env.versions, info=env.info)
        for case in job["cases"]:
            try:
                out["cases"][case["id"]] = {"passes": run_case(env, case, job)}
            except Exception as e:  # noqa: BLE001
                out["cases"][case["id"]] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    with open(result_path, "w") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--export"]:
        sys.exit(export_model(sys.argv[2]))
    sys.exit(main(sys.argv[1:]))
