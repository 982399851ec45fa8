"""Self-test of bench/compare.py on a small synthetic pytest-benchmark JSON (runs in smoke mode too)."""

from __future__ import annotations

import json
import math

import compare


def _bench(group, impl, median_s, **extra):
    return {
        "group": group,
        "name": f"test[{impl}]",
        "stats": {"median": median_s},
        "extra_info": {"impl": impl, "threads": 2, **extra},
    }


def _data():
    conv = dict(op="conv2d", pass_="forward", flops=int(2e9), label="")
    return {
        "machine_info": {"cnnfast": {"version": "x", "selected_isa": "avx2"}, "torch": {"version": "t"}},
        "benchmarks": [
            _bench("peak-fma", "cnnfast", 0.3, op="peak", pass_="fma", case="threads=2", gflops=100.0),
            _bench(
                "peak-bandwidth",
                "cnnfast",
                1.0,
                op="peak",
                pass_="bandwidth",
                case="threads=2",
                copy_gbs=20.0,
                scale_gbs=20.0,
                triad_gbs=22.0,
            ),
            # ratio 2.0, 25 GFLOP/s of a 100 GFLOP/s peak: the 3x3 row misses its 80% target
            _bench("g1", "cnnfast", 0.08, case="resnet_3x3_64x56_n16", **conv),
            _bench("g1", "torch", 0.16, case="resnet_3x3_64x56_n16", **conv),
            # ratio 0.5: below the 0.8 floor
            _bench("g2", "cnnfast", 0.02, case="lenet_c1_n64", **conv),
            _bench("g2", "torch", 0.01, case="lenet_c1_n64", **conv),
            # 80 MB in 5 ms = 16 GB/s = 80% of copy bandwidth: met
            _bench("g3", "cnnfast", 0.005, op="relu", pass_="forward_inplace", case="r", bytes=int(80e6)),
            _bench("g4", "cnnfast", 0.1, op="import", pass_="import", case="import", threads=0),
            _bench(
                "g5",
                "cnnfast",
                1.0,
                op="memory",
                pass_="forward",
                case="resnet_stem_n16",
                rss_delta_bytes=int(60e6),
                output_bytes=int(51e6),
            ),
            _bench(
                "g5",
                "torch",
                1.0,
                op="memory",
                pass_="forward",
                case="resnet_stem_n16",
                rss_delta_bytes=int(120e6),
                output_bytes=int(51e6),
            ),
            {"group": "filters-x", "name": "test_other", "stats": {"median": 0.001}, "extra_info": {}},
        ],
    }


def _row(table, start):
    rows = [line for line in table.splitlines() if line.startswith(start)]
    assert len(rows) == 1, (start, table)
    return [c.strip() for c in rows[0].strip("|").split("|")]


def test_compare_table(tmp_path):
    path = tmp_path / "out.json"
    path.write_text(json.dumps(_data()))
    table = compare.build_table(compare.load(str(path)), threads=2)
    r = _row(table, "| conv2d forward resnet_3x3_64x56_n16")
    assert r[4] == "2.00x" and r[6] == "25.0 GFLOP/s" and r[7] == "25%" and "MISSED" in r[9]
    r = _row(table, "| conv2d forward lenet_c1_n64")
    assert r[4] == "0.50x" and "MISSED" in r[9]
    g = _row(table, "| **conv2d forward: geomean of 2**")
    assert g[4] == f"**{math.sqrt(2.0 * 0.5):.2f}x**" and "MISSED" in g[9]
    r = _row(table, "| relu forward_inplace r")
    assert r[6] == "16.0 GB/s" and r[7] == "80%" and r[9] == "met"
    assert _row(table, "| import time")[9] == "met"
    r = _row(table, "| peak RSS: conv2d forward resnet_stem_n16")
    assert r[2] == "60.0 MB" and r[3] == "120.0 MB" and r[4] == "2.00x" and r[9] == "met"
    assert "| filters-x | test_other |" in table
    assert "**Targets met: 3 of 6**" in table
