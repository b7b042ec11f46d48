#!/usr/bin/env bash
# Set up a CPU environment and run the embedded default end to end:
# generate the synthetic remote-sensing dataset, then push every sample of
# the GCG and referring-segmentation splits through the full data pipeline
# (decode, rasterise masks, adaptive HD tiling, tokenization, label masking)
# and draw mask overlays with phrase legends.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_venv.sh
. .venv/bin/activate
# glibc returns big buffers to the kernel at every step by default; on CPU
# that halves throughput (docs/en/notes/performance.md).
export MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824
if [ ! -f data/synthetic/meta.json ]; then
    python tools/dataset_converters/make_synthetic.py --out data/synthetic \
        --num-images 40 --size 512 --seed 0
fi
python tools/misc/list_components.py
for config in synthetic_gcg synthetic_rrsis; do
    python tools/misc/browse_dataset.py "configs/_base_/datasets/${config}.py" \
        --split train --output-dir "work_dirs/quickstart/${config}"
done
echo
echo "Done. Overlays and summary.json: work_dirs/quickstart/*/"
