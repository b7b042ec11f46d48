"""Score a folder of RRSIS-D predictions (from any model).

    python tools/analysis/eval_rrsis_predictions.py --pred-dir PREDS \\
        --data-root data/rrsisd [--split test] [--resolution 480] \\
        [--strict] [--out res.json]

One file per sample (every sentence of every ref), named by REFER's
sent_id: ``{sent_id}.png`` (one band, nonzero = foreground, original image
size) or ``{sent_id}.json`` holding ``{"sent_id", "pred_mask": RLE}``
(``tools/test.py CONFIG CKPT --out DIR`` writes the PNGs). The scores are
RRSISMetric's. Duplicate and missing files are reported (errors with
--strict); a sample without a file is an empty prediction.
"""
import argparse
import os.path as osp
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)


def format_table(scores: dict) -> str:
    from geopixel.evaluation.functional.files import format_number
    names = [k for k in scores if k.startswith('P@')] + ['oIoU', 'mIoU']
    return '\n'.join([
        '  '.join(f'{n:>7}' for n in names),
        '  '.join(f'{format_number(scores[n]):>7}' for n in names),
        f'samples: {scores["samples"]}; resolution: '
        f'{scores["resolution"] or "original"}'])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--pred-dir', required=True)
    parser.add_argument('--data-root', required=True,
                        help='folder holding rrsisd/ (refs and '
                        'instances.json) and images/')
    parser.add_argument('--split', default='test',
                        choices=('train', 'val', 'test'))
    parser.add_argument('--resolution', type=int, default=None,
                        help='compare at N x N nearest (RMSIN: 480)')
    parser.add_argument('--strict', action='store_true',
                        help='duplicate or missing prediction files are '
                        'an error')
    parser.add_argument('--out', help='write the scores as JSON')
    args = parser.parse_args(argv)

    from geopixel.evaluation.functional.files import write_scores
    from geopixel.evaluation.functional.rrsis_files import (gt_samples,
                                                 score_prediction_folder)
    start = time.time()
    samples = gt_samples(args.data_root, args.split)
    scores, report = score_prediction_folder(
        args.pred_dir, samples, args.resolution, strict=args.strict)
    for line in report.lines():
        print(line)
    scores.update(split=args.split, resolution=args.resolution,
                  prediction_files=report.as_dict(),
                  seconds=round(time.time() - start, 2))
    write_scores(args.out, scores)
    print(format_table(scores))


if __name__ == '__main__':
    from geopixel.utils import run_tool
    run_tool(main)
