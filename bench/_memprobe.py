"""Peak-RSS probe: run ONE conv2d pass of one framework in this fresh process and print JSON.

    python bench/_memprobe.py <cnnfast|torch|numpy> <forward|backward_input|backward_weight> <case> <threads>

Used by bench_memory.py, one subprocess per (framework, case, pass), so nothing else the suite
allocated (other frameworks, caches, earlier cases) is counted. After the inputs are built it
resets the kernel's RSS high-water mark (/proc/self/clear_refs, Linux) and reports how far one
call raises it: the call's extra working bytes, its output included.
"""

from __future__ import annotations

import gc
import json
import resource
import sys

import numpy as np

from _suite import CONV_BY_NAME, conv_inputs, numpy_conv2d_input, numpy_conv2d_weight, reference


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # "5": reset the peak RSS (VmHWM) to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def main(impl: str, pass_: str, case_name: str, threads: int) -> dict:
    case = CONV_BY_NAME[case_name]
    d = conv_inputs(case)
    x, w, b, gy, s, p = d["x"], d["w"], d["b"], d["gy"], case.stride, case.pad
    if impl == "cnnfast":
        import cnnfast

        cnnfast.set_num_threads(threads)
        fn = {
            "forward": lambda: cnnfast.conv2d(x, w, b, s, p),
            "backward_input": lambda: cnnfast.conv2d_input(x.shape, w, gy, s, p),
            "backward_weight": lambda: cnnfast.conv2d_backward(gy, x, w, s, p, output_mask=(False, True, True)),
        }[pass_]
    elif impl == "torch":
        import torch

        torch.set_num_threads(threads)
        xt, wt, bt, gyt = (torch.from_numpy(a) for a in (x, w, b, gy))
        cb = torch.ops.aten.convolution_backward
        sp, pp = [s, s], [p, p]

        def fwd():
            with torch.no_grad():
                return torch.nn.functional.conv2d(xt, wt, bt, sp, pp)

        fn = {
            "forward": fwd,
            "backward_input": lambda: cb(gyt, xt, wt, None, sp, pp, [1, 1], False, [0, 0], 1, [True, False, False]),
            "backward_weight": lambda: cb(gyt, xt, wt, [case.K], sp, pp, [1, 1], False, [0, 0], 1, [False, True, True]),
        }[pass_]
    else:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
        fn = {
            "forward": lambda: reference.conv2d(x, w, b, s, p),
            "backward_input": lambda: numpy_conv2d_input(gy, w, x.shape, s, p),
            "backward_weight": lambda: numpy_conv2d_weight(x, gy, w.shape, s, p),
        }[pass_]
    gc.collect()
    rss_before = _status_kb("VmRSS")
    exact = _reset_hwm() and rss_before is not None
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    out = fn()
    if exact:
        delta_kb = _status_kb("VmHWM") - rss_before
    else:  # no clear_refs: the lifetime peak, which only counts if the call exceeded the setup's peak
        delta_kb = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - maxrss_before)
    out_bytes = {
        "forward": 4 * int(np.prod(case.y_shape)),
        "backward_input": 4 * int(np.prod(case.x_shape)),
        "backward_weight": 4 * (int(np.prod(case.w_shape)) + case.K),
    }[pass_]
    del out
    return {
        "impl": impl,
        "pass": pass_,
        "case": case_name,
        "threads": threads,
        "exact": exact,
        "rss_delta_bytes": delta_kb * 1024,
        "output_bytes": out_bytes,
        "rss_before_bytes": (rss_before or 0) * 1024,
    }


if __name__ == "__main__":
    impl, pass_, case_name, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    print(json.dumps(main(impl, pass_, case_name, threads)))
