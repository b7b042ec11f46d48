"""Score a folder of GLaMM-format RS-GCG predictions (from any model).

    python tools/analysis/eval_predictions.py --pred-dir PREDS \\
        --caption-gt annotations/test_gcg_coco_caption_gt.json \\
        --mask-gt annotations/test_gcg_coco_mask_gt.json \\
        [--bert checkpoints/bert-base-uncased] [--no-captions] \\
        [--kinds {num_instances,connected-components}] [--strict] \\
        [--out res.json]

Captions are scored as stored in the prediction files (geopixel cleans them
when it writes them, as GLaMM's inference does). Without --bert, recall is
IoU-only and labelled so. Duplicate and missing prediction files are
reported (errors with --strict). The mask metrics are printed and written
to --out before caption scoring starts, so they survive a caption failure.
"""
import argparse
import os.path as osp
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)


def format_table(scores: dict) -> str:
    from geopixel.evaluation.functional.files import format_number
    recall = next(k for k in ('Recall', 'Recall (IoU-only)') if k in scores)
    rows = [('', 'AP50', 'mIoU', recall)]
    for prefix, name in (('', 'overall'), ('uni/', 'uni-target'),
                         ('multi/', 'multi-target')):
        rows.append((name, ) + tuple(
            format_number(scores.get(prefix + m))
            for m in ('AP50', 'mIoU', recall)))
    lines = ['  '.join(f'{c:>17}' for c in row) for row in rows]
    if 'CIDEr' in scores:
        lines.append(caption_line(scores))
    lines.append(f'recall text similarity: '
                 f'{scores["recall_text_similarity"]}; images: '
                 f'{scores["images"]}; images failing GLaMM\'s recall loop '
                 f'(0 true positives): {scores["recall_failed_images"]}')
    return '\n'.join(lines)


def caption_line(scores: dict) -> str:
    from geopixel.evaluation.functional.files import format_number
    return (f'CIDEr {format_number(scores["CIDEr"])}  METEOR '
            f'{format_number(scores["METEOR"])}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--pred-dir', required=True)
    parser.add_argument('--caption-gt', required=True)
    parser.add_argument('--mask-gt', required=True)
    parser.add_argument('--bert', help='local bert-base-uncased folder')
    parser.add_argument('--no-captions', action='store_true')
    parser.add_argument(
        '--kinds', default='num_instances',
        choices=('num_instances', 'connected-components'),
        help='where the uni/multi-target split comes from: the GT '
        'converter\'s num_instances field (default), or the 8-connected '
        'components of each GT mask (an approximation)')
    parser.add_argument('--strict', action='store_true',
                        help='duplicate or missing prediction files are '
                        'an error')
    parser.add_argument('--out', help='write the scores as JSON')
    args = parser.parse_args(argv)

    from geopixel.evaluation.functional.files import write_scores
    from geopixel.evaluation.functional.gcg import (BertMeanPoolScorer,
                                         CaptionToolsMissing,
                                         require_caption_tools,
                                         score_gcg_captions, score_gcg_masks)
    from geopixel.evaluation.functional.gcg_files import records_from_files
    start = time.time()
    records, report = records_from_files(args.caption_gt, args.mask_gt,
                                         args.pred_dir, args.kinds)
    for line in report.lines():
        print(line)
    report.raise_if_strict(args.strict)
    scorer = BertMeanPoolScorer(args.bert) if args.bert else None
    scores = score_gcg_masks(records, scorer)
    scores['kinds'] = (None if any(r['gt_kinds'] is None for r in records)
                       else args.kinds)
    scores['prediction_files'] = report.as_dict()
    scores['seconds'] = round(time.time() - start, 2)
    write_scores(args.out, scores)
    print(format_table(scores))
    if args.no_captions:
        return
    try:
        require_caption_tools(
            'Or pass --no-captions.' + (f' The mask metrics are in {args.out}.'
                                        if args.out else ''))
    except CaptionToolsMissing as exc:
        raise SystemExit(str(exc)) from None
    scores.update(score_gcg_captions(records))
    scores['seconds'] = round(time.time() - start, 2)
    write_scores(args.out, scores)
    print(caption_line(scores))


if __name__ == '__main__':
    from geopixel.utils import run_tool
    run_tool(main)
