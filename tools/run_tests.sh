#!/usr/bin/env bash
# Set up a CPU environment (if needed) and run the test suite.
# Extra arguments go to pytest, e.g. `bash tools/run_tests.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_venv.sh requirements/tests.txt requirements/eval.txt requirements/demo.txt \
    requirements/deepspeed.txt
. .venv/bin/activate
export MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824
python -m pytest "$@"
