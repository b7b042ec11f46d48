#!/usr/bin/env bash
# Create .venv (if missing) and install geopixel for CPU, plus extra
# requirement files given as arguments (e.g. requirements/tests.txt).
# Safe to re-run: pip skips what is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch is pinned to the CPU build in requirements/cpu.txt; GPU users see
# docs/en/get_started.md.
extra=()
for req in "$@"; do extra+=(-r "$req"); done
python -m pip install -q -r requirements/cpu.txt -r requirements/sam2.txt \
    "${extra[@]}"
# sam2 ships as source only; build it without its CUDA extension
if ! python -c "import sam2" 2>/dev/null; then
    SAM2_BUILD_CUDA=0 python -m pip install -q --no-deps --no-build-isolation \
        sam2==1.1.0
fi
python -m pip install -q --no-deps -e .
