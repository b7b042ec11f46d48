#!/usr/bin/env bash
# Set up a CPU environment and run the embedded default end to end:
# generate the synthetic remote-sensing dataset, train the tiny GeoPixel
# (the real model classes at CPU size) on its referring-segmentation split,
# evaluate it on the held-out test split (P@X, oIoU, mIoU), draw
# ground-truth / prediction overlays, and run tools/infer.py on a new scene.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_venv.sh
. .venv/bin/activate
# glibc returns big buffers to the kernel at every step by default; on CPU
# that halves throughput (docs/en/notes/performance.md).
export MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824
# (re)generate unless data/synthetic already holds exactly this data set
# (an older quick start made 200 scenes)
if ! python -c "import json, sys; m = json.load(open('data/synthetic/meta.json')); sys.exit((m['num_images'], m['size'], m['seed']) != (1000, 256, 0))" 2>/dev/null; then
    python tools/dataset_converters/make_synthetic.py --out data/synthetic \
        --num-images 1000 --size 256 --seed 0
fi
work=work_dirs/quickstart
python tools/train.py configs/geopixel/rrsis_tiny.py --work-dir "$work"
python tools/test.py configs/geopixel/rrsis_tiny.py \
    "$work/$(basename "$(cat "$work/last_checkpoint")")" \
    --work-dir "$work" --show-dir "$work/overlays"
# ask the trained model about a scene it never saw (seed 1234 is not in the
# training data): one referring expression of that scene
python tools/misc/make_scene.py --out "$work/heldout" --seed 1234
python tools/infer.py configs/geopixel/rrsis_tiny.py \
    "$work/$(basename "$(cat "$work/last_checkpoint")")" \
    "$work/heldout/scene.png" --task refer \
    --prompt "$(head -n 1 "$work/heldout/expressions.txt")" \
    --out "$work/infer"
echo
echo "Done. Checkpoints, logs and metrics.json: $work/; overlays: $work/overlays/"
echo "Inference on a held-out scene: $work/infer/ (JSON, mask PNG, overlay)"
