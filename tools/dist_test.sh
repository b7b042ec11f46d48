#!/usr/bin/env bash
# Evaluate on NUM_PROCS processes on one node.
#   tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [test.py args...]
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
PORT=${PORT:-29500}
TOOLS="$(cd "$(dirname "$0")" && pwd)"
PYTHONPATH="$(dirname "$TOOLS"):$PYTHONPATH" \
python -m torch.distributed.run --nproc_per_node="$NPROC" \
    --master_port="$PORT" \
    "$TOOLS/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
