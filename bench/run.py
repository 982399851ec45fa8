"""Run the benchmark suite and print the comparison table (one command).

    python bench/run.py            # full run (pytest-benchmark defaults: >= 5 rounds, ~1 s per benchmark)
    python bench/run.py --quick    # fewer rounds, no NumPy variants, only the headline memory probe
    python bench/run.py --json out.json --output table.md -- -k conv2d   # extra pytest arguments after --

Runs `pytest bench --benchmark-json=...` from the repository root with this interpreter's pytest,
then bench/compare.py on the JSON. Exit status: pytest's (the table is printed either way).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

import compare  # noqa: E402

QUICK = [
    "--benchmark-min-rounds=3",
    "--benchmark-max-time=0.25",
    "--bench-no-numpy",
    "-k",
    "not (peak_rss and resnet_3x3)",
]


def _pytest_exe() -> str:
    # The pytest script next to this interpreter: `python -m pytest` would put the repo root on
    # sys.path, where the source cnnfast/ (without the built _core) shadows the installed package.
    cand = Path(sys.executable).with_name("pytest")
    return str(cand) if cand.exists() else (shutil.which("pytest") or "pytest")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Run bench/ and print the cnnfast vs PyTorch table.")
    ap.add_argument("--quick", action="store_true", help="fewer rounds, no NumPy variants (a few minutes)")
    ap.add_argument("--threads", type=int, default=2, help="thread cap for every framework (default 2)")
    ap.add_argument("--json", default=str(ROOT / ".benchmarks" / "latest.json"), help="where to save the raw JSON")
    ap.add_argument("--output", help="also write the Markdown table to this file")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = ap.parse_args(argv)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        _pytest_exe(),
        "bench",
        f"--benchmark-json={args.json}",
        f"--bench-threads={args.threads}",
        "--benchmark-columns=median,iqr,rounds",
        "-q",
        *(QUICK if args.quick else []),
        *args.pytest_args,
    ]
    print("+", " ".join(cmd), flush=True)
    rc = subprocess.call(cmd, cwd=ROOT)
    if not Path(args.json).exists():
        print(f"no results written to {args.json}", file=sys.stderr)
        return rc or 1
    print()
    out = ["--output", args.output] if args.output else []
    table_rc = compare.main([args.json, "--threads", str(args.threads), *out])
    return rc or table_rc


if __name__ == "__main__":
    sys.exit(main())
