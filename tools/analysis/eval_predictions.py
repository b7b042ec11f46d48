"""Score a folder of GLaMM-format RS-GCG predictions (from any model).

    python tools/analysis/eval_predictions.py --pred-dir PREDS \\
        --caption-gt annotations/test_gcg_coco_caption_gt.json \\
        --mask-gt annotations/test_gcg_coco_mask_gt.json \\
        [--bert checkpoints/bert-base-uncased] [--no-captions] [--out res.json]

Captions are scored as stored in the prediction files (geopixel cleans them
when it writes them, as GLaMM's inference does). Without --bert, recall is
IoU-only and labelled so.
"""
import argparse
import json
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def format_table(scores: dict) -> str:
    rows = [('', 'AP50', 'mIoU', 'Recall')]
    for prefix, name in (('', 'overall'), ('uni/', 'uni-target'),
                         ('multi/', 'multi-target')):
        rows.append((name, ) + tuple(
            f'{scores.get(prefix + m, float("nan")):.1f}'
            for m in ('AP50', 'mIoU', 'Recall')))
    lines = ['  '.join(f'{c:>13}' for c in row) for row in rows]
    if 'CIDEr' in scores:
        lines.append(f'CIDEr {scores["CIDEr"]:.1f}  METEOR '
                     f'{scores["METEOR"]:.1f}')
    lines.append(f'recall text similarity: '
                 f'{scores["recall_text_similarity"]}; images: '
                 f'{scores["images"]}')
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--pred-dir', required=True)
    parser.add_argument('--caption-gt', required=True)
    parser.add_argument('--mask-gt', required=True)
    parser.add_argument('--bert', help='local bert-base-uncased folder')
    parser.add_argument('--no-captions', action='store_true')
    parser.add_argument('--out', help='write the scores as JSON')
    args = parser.parse_args(argv)

    from geopixel.evaluation.gcg import BertMeanPoolScorer, score_gcg
    from geopixel.evaluation.gcg_files import records_from_files
    start = time.time()
    records = records_from_files(args.caption_gt, args.mask_gt,
                                 args.pred_dir)
    scorer = BertMeanPoolScorer(args.bert) if args.bert else None
    scores = score_gcg(records, scorer, not args.no_captions)
    scores['seconds'] = round(time.time() - start, 2)
    print(format_table(scores))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(scores, f, indent=2)


if __name__ == '__main__':
    main()
