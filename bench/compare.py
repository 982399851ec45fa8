"""Turn a saved pytest-benchmark JSON into ONE Markdown table: cnnfast vs PyTorch vs NumPy.

    pytest bench --benchmark-json=out.json
    python bench/compare.py out.json [--threads 2] [--output table.md]

Per case: medians (ms), the ratio torch/cnnfast (> 1: cnnfast is faster), cnnfast's GFLOP/s
(conv) or GB/s (pool, relu) and its share of the machine's measured FMA peak or copy bandwidth
(from bench_peak.py in the same JSON), the geometric mean of the ratio per conv pass, and each
row's target ("met" / "MISSED"). Needs only the standard library.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import defaultdict

# Display order of the sections and of the passes inside them.
OP_ORDER = ["conv2d", "maxpool2d", "relu", "lenet", "import", "memory"]
PASS_ORDER = [
    "forward",
    "backward_input",
    "backward_weight",
    "forward_indices",
    "backward",
    "forward_out",
    "backward_out",
    "forward_inplace",
    "train_step",
    "inference",
    "import",
]

# The targets of the performance issue, in one place.
CONV_GEOMEAN_MIN = 1.2  # per conv pass, geometric mean of torch/cnnfast
CONV_CASE_MIN = 0.8  # no conv case slower than this ratio
CONV3X3_PEAK_MIN = 80.0  # % of FMA peak, 3x3 stride-1 C>=64 forward
POOL_FWD_RATIO_MIN, POOL_FWD_BW_MIN = 5.0, 50.0
POOL_BWD_RATIO_MIN = 1.0
RELU_RATIO_MIN = 1.5  # out-of-place forward/backward
RELU_BW_MIN = 70.0  # out= / in-place, % of copy bandwidth
TRAIN_RATIO_MIN, INFER_RATIO_MIN = 1.5, 1.3
IMPORT_MAX_S = 0.15
# Bandwidth targets apply only to working sets that must stream from DRAM: above the 32 MB L3
# of the dev machine. Smaller cases run from cache, where "% of DRAM bandwidth" means nothing.
DRAM_BYTES_MIN = 40e6


def load(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def records(data: dict) -> list[dict]:
    """One record per benchmark: its extra_info plus median_s, order (position in the run)."""
    out = []
    for i, b in enumerate(data.get("benchmarks", [])):
        e = dict(b.get("extra_info") or {})
        e["group"] = b.get("group")
        e["name"] = b.get("name")
        e["median_s"] = (b.get("stats") or {}).get("median")
        e["order"] = i
        out.append(e)
    return out


def machine_peaks(recs: list[dict], threads: int) -> tuple[float | None, float | None, dict]:
    """(FMA GFLOP/s at `threads`, copy GB/s at `threads`, all peaks for the header), best of each."""
    # Several measurements per thread count (start and end of the run): keep the best of each.
    fma: dict = {}
    bw: dict = {}
    for r in recs:
        if r.get("op") == "peak" and r.get("pass_") == "fma":
            fma[r["threads"]] = max(fma.get(r["threads"], 0.0), r["gflops"])
        elif r.get("op") == "peak" and r.get("pass_") == "bandwidth":
            prev = bw.get(r["threads"])
            bw[r["threads"]] = {k: max(r[k], prev[k]) if prev else r[k] for k in ("copy_gbs", "scale_gbs", "triad_gbs")}
    copy = bw[threads]["copy_gbs"] if threads in bw else None
    return fma.get(threads), copy, {"fma": fma, "bandwidth": bw}


def _ms(s):
    return "" if s is None else (f"{s * 1e3:.3g}" if s * 1e3 < 100 else f"{s * 1e3:.0f}")


def _mb(b):
    return "" if b is None else f"{b / 1e6:.1f} MB"


def _ratio(r):
    return "" if r is None else f"{r:.2f}x"


def _verdict(ok):
    return "n/a" if ok is None else ("met" if ok else "**MISSED**")


def _conv3x3_c64(case: str) -> bool:
    m = re.match(r"resnet_3x3_(\d+)x", case)
    return bool(m) and int(m.group(1)) >= 64


def _target(op, pass_, case, ratio, pct, value_s, nbytes=None):
    """(criterion text, met?) for one row; met is None when the row cannot be judged (no torch)."""
    if op == "conv2d":
        if pass_ == "forward" and _conv3x3_c64(case):
            ok = None if ratio is None or pct is None else (ratio >= CONV_CASE_MIN and pct >= CONV3X3_PEAK_MIN)
            return f">={CONV_CASE_MIN}x, >={CONV3X3_PEAK_MIN:.0f}% peak", ok
        return f">={CONV_CASE_MIN}x", None if ratio is None else ratio >= CONV_CASE_MIN
    if op == "maxpool2d":
        if not pass_.startswith("forward"):
            return f">={POOL_BWD_RATIO_MIN:g}x", None if ratio is None else ratio >= POOL_BWD_RATIO_MIN
        if (nbytes or 0) < DRAM_BYTES_MIN:
            return f">={POOL_FWD_RATIO_MIN:g}x", None if ratio is None else ratio >= POOL_FWD_RATIO_MIN
        ok = None if ratio is None or pct is None else (ratio >= POOL_FWD_RATIO_MIN and pct >= POOL_FWD_BW_MIN)
        return f">={POOL_FWD_RATIO_MIN:g}x, >={POOL_FWD_BW_MIN:.0f}% bw", ok
    if op == "relu":
        if pass_ in ("forward", "backward"):
            return f">={RELU_RATIO_MIN:g}x", None if ratio is None else ratio >= RELU_RATIO_MIN
        if (nbytes or 0) < DRAM_BYTES_MIN:
            return "", None
        return f">={RELU_BW_MIN:.0f}% bw", None if pct is None else pct >= RELU_BW_MIN
    if op == "lenet":
        lim = TRAIN_RATIO_MIN if pass_ == "train_step" else INFER_RATIO_MIN
        return f">={lim:g}x", None if ratio is None else ratio >= lim
    if op == "import":
        return f"<{IMPORT_MAX_S:g} s", None if value_s is None else value_s < IMPORT_MAX_S
    return "", None


def build_table(data: dict, threads: int = 2) -> str:
    recs = records(data)
    peak, copy_bw, peaks = machine_peaks(recs, threads)
    rows_by_key: dict[tuple, dict] = defaultdict(dict)
    first_seen: dict[tuple, int] = {}
    other = []
    for r in recs:
        op = r.get("op")
        if op == "peak":
            continue
        if op not in OP_ORDER:
            other.append(r)
            continue
        if r.get("threads") not in (threads, 0):  # 0: not thread-dependent (import)
            continue
        key = (op, r["pass_"], r["case"])
        rows_by_key[key][r["impl"]] = r
        first_seen.setdefault(key, r["order"])

    def sort_key(k):
        op, pass_, _ = k
        return (OP_ORDER.index(op), PASS_ORDER.index(pass_) if pass_ in PASS_ORDER else 99, first_seen[k])

    lines = []
    info = data.get("machine_info", {})
    cf = info.get("cnnfast") or {}
    torch_v = (info.get("torch") or {}).get("version", "not installed")
    cpu = (info.get("cpu") or {}).get("brand_raw", info.get("processor", "?"))
    fma = peaks["fma"]
    bw = peaks["bandwidth"].get(threads, {})
    lines.append(
        f"**Machine**: {cpu}, {info.get('cpu_count', '?')} CPUs; threads = {threads} for every framework. "
        f"cnnfast {cf.get('version', '?')} (ISA {cf.get('selected_isa', '?')}), PyTorch {torch_v}, "
        f"{data.get('datetime', '')[:19]}, commit {(data.get('commit_info') or {}).get('id', '?')[:10]}."
    )
    kern = cf.get("kernels")
    if kern:
        lines.append("")
        lines.append("**cnnfast kernels selected**: " + ", ".join(f"{k}={v}" for k, v in kern.items()) + ".")
    lines.append("")
    lines.append(
        "**Measured peaks**: FMA "
        + (", ".join(f"{fma[t]:.1f} GFLOP/s ({t} thread{'s' if t > 1 else ''})" for t in sorted(fma)) or "not measured")
        + "; bandwidth "
        + (
            f"copy {bw['copy_gbs']:.1f}, scale {bw['scale_gbs']:.1f}, triad {bw['triad_gbs']:.1f} GB/s "
            f"({threads} threads)"
            if bw
            else "not measured"
        )
        + "."
    )
    lines.append("")
    lines.append(
        "| case | shape | cnnfast ms | PyTorch ms | torch/cnnfast | NumPy ms | cnnfast rate | % of peak | target | |"
    )
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---|---|")

    conv_ratios: dict[str, list[float]] = defaultdict(list)
    verdicts = []
    keys = sorted(rows_by_key, key=sort_key)

    def emit_geomean(pass_):
        rs = conv_ratios.get(pass_, [])
        if not rs:
            return
        g = math.exp(sum(math.log(x) for x in rs) / len(rs))
        worst = min(rs)
        ok = g >= CONV_GEOMEAN_MIN and worst >= CONV_CASE_MIN
        verdicts.append(ok)
        lines.append(
            f"| **conv2d {pass_}: geomean of {len(rs)}** | | | | **{g:.2f}x** | | | | "
            f">={CONV_GEOMEAN_MIN}x, none <{CONV_CASE_MIN}x (worst {worst:.2f}x) | {_verdict(ok)} |"
        )

    prev_conv_pass = None
    for key in keys:
        op, pass_, case = key
        if op == "conv2d" and prev_conv_pass not in (None, pass_):
            emit_geomean(prev_conv_pass)
        if op != "conv2d" and prev_conv_pass is not None:
            emit_geomean(prev_conv_pass)
            prev_conv_pass = None
        if op == "conv2d":
            prev_conv_pass = pass_
        impls = rows_by_key[key]
        c, t, n = impls.get("cnnfast"), impls.get("torch"), impls.get("numpy")
        any_r = c or t or n
        label = any_r.get("label", "")
        if op == "memory":
            cb = c and c.get("rss_delta_bytes")
            tb = t and t.get("rss_delta_bytes")
            nb = n and n.get("rss_delta_bytes")
            ratio = tb / cb if cb and tb and min(cb, tb) >= 1e6 else None  # tiny deltas: allocator noise
            out_b = any_r.get("output_bytes")
            target, ok = "", None
            if case == "resnet_stem_n16" and pass_ == "forward":
                target, ok = "<= torch", (None if cb is None or tb is None else cb <= tb)
            if ok is not None:
                verdicts.append(ok)
            lines.append(
                f"| peak RSS: conv2d {pass_} {case} | {label} | {_mb(cb)} | {_mb(tb)} | {_ratio(ratio)} | "
                f"{_mb(nb)} | output {_mb(out_b)} | | {target} | {_verdict(ok) if target else ''} |"
            )
            continue
        cs = c and c.get("median_s")
        ts = t and t.get("median_s")
        ns = n and n.get("median_s")
        ratio = ts / cs if cs and ts else None
        rate, pct = "", None
        if cs and "flops" in (c or {}):
            g = c["flops"] / cs / 1e9
            rate = f"{g:.1f} GFLOP/s" + (f" ({c['kernel']})" if c.get("kernel") else "")
            pct = 100 * g / peak if peak else None
        elif cs and "bytes" in (c or {}):
            gbs = c["bytes"] / cs / 1e9
            rate = f"{gbs:.1f} GB/s"
            pct = 100 * gbs / copy_bw if copy_bw else None
        if op == "conv2d" and ratio:
            conv_ratios[pass_].append(ratio)
        if op == "import":
            ratio = None  # torch's import time is context, not a competitor
        target, ok = _target(op, pass_, case, ratio, pct, cs, (c or {}).get("bytes"))
        if ok is not None:
            verdicts.append(ok)
        name = f"{op} {pass_} {case}" if op != "import" else "import time: cnnfast / torch / numpy"
        lines.append(
            f"| {name} | {label} | {_ms(cs)} | {_ms(ts)} | {_ratio(ratio)} | {_ms(ns)} | {rate} | "
            f"{'' if pct is None else f'{pct:.0f}%'} | {target} | {_verdict(ok) if target else ''} |"
        )
    if prev_conv_pass is not None:
        emit_geomean(prev_conv_pass)

    lines.append("")
    met = sum(1 for v in verdicts if v)
    lines.append(
        f"**Targets met: {met} of {len(verdicts)}** (rows without a PyTorch timing are not judged). "
        "Ratio = PyTorch median / cnnfast median (> 1: cnnfast faster). % of peak: conv against the "
        f"{threads}-thread FMA peak, counting the direct algorithm's 2*N*K*C*R*S*OH*OW FLOPs whatever "
        "the kernel (in brackets: the cnnfast kernel that ran; Winograd does 4x fewer multiplications, so "
        "its effective rate can pass 100%); "
        f"pool/ReLU GB/s (bytes read + written once) against the {threads}-thread "
        "STREAM copy bandwidth. Import: NumPy column = `import numpy`, which cnnfast includes."
    )
    if other:
        lines.append("")
        lines.append("Other benchmarks in this file:")
        lines.append("")
        lines.append("| group | benchmark | median ms |")
        lines.append("|---|---|---:|")
        for r in sorted(other, key=lambda r: (r.get("group") or "", r["order"])):
            lines.append(f"| {r.get('group')} | {r.get('name')} | {_ms(r.get('median_s'))} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", help="file written by pytest bench --benchmark-json=FILE")
    ap.add_argument("--threads", type=int, default=2, help="thread count whose results to tabulate (default 2)")
    ap.add_argument("--output", help="also write the Markdown table to this file")
    args = ap.parse_args(argv)
    data = load(args.json)
    if not data.get("benchmarks"):
        print(f"{args.json}: no timed benchmarks (was it written with --benchmark-disable?)", file=sys.stderr)
        return 1
    table = build_table(data, args.threads)
    print(table)
    if args.output:
        with open(args.output, "w") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
