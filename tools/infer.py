"""Ask a trained GeoPixel about your own images; write masks and overlays.

    python tools/infer.py CONFIG CHECKPOINT INPUTS... [--task gcg|refer|ask]
        [--prompt TEXT] [--hd-num N] [--batch-size N] [--out DIR]
        [--device DEV] [--trust-checkpoint] [--non-strict] [--chat]
        [--cfg-options k=v ...] [--bands R,G,B] [--stretch percentile|range]
        [--geojson] [--window N [--overlap M]]

INPUTS are image files, folders (their image files, sorted) or glob
patterns. Tasks: ``gcg`` describes the image with grounded phrases (the
GeoPixelD question), ``refer`` segments the object ``--prompt`` names (the
RRSIS-D question), ``ask`` asks ``--prompt``. Per image, ``--out`` receives
``{stem}.json`` (answer, phrases, RLE masks, boxes, areas, timings), one
``{stem}_mask{k}_{phrase}.png`` (0/255) per mask and
``{stem}_overlay.png``. ``--chat`` talks about one image: questions come
line by line from the terminal or piped stdin until EOF, an empty line or
``/exit``; each turn writes ``{stem}_turn{t}*`` files.

GIS (``pip install "geopixel[gis]"``): ``--bands``/``--stretch`` choose
and scale bands; ``--geojson`` reads each image with
``geopixel.gis.open_image_source`` (nodata kept out of the stretch and out
of the masks) and also writes ``{stem}.geojson`` (one feature per mask, in
the image's CRS) and ``{stem}_mask{k}.tif`` (georeferenced 0/1 masks);
``--window N`` answers each image in overlapping windows of N px read one
at a time and stitched (``{stem}.json``, ``{stem}_mask.tif`` written
window by window, ``{stem}.geojson`` with ``--geojson``; tasks gcg and
refer).

Exit status: 0 when every image was answered; 1 when the run stops on an
error (a bad checkpoint, config or option, or the only input is bad);
2 for a usage error; 3 when some inputs failed and the others were
written: the failed ones are listed with their errors at the end.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

PARTIAL_FAILURE = 3


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the config the model was trained '
                        'with')
    parser.add_argument('checkpoint', help='checkpoint file or folder')
    parser.add_argument('inputs', nargs='+',
                        help='image files, folders or glob patterns')
    parser.add_argument(
        '--task', choices=['gcg', 'refer', 'ask'], default='gcg',
        help='gcg: describe with grounded phrases (default); refer: segment '
        'what --prompt names; ask: ask --prompt')
    parser.add_argument('--prompt', help='the expression (refer) or the '
                        'question (ask)')
    parser.add_argument('--hd-num', type=int,
                        help='tile budget (default: the config\'s)')
    parser.add_argument('--batch-size', type=int, default=1,
                        help='images decoded together')
    parser.add_argument('--out', default='outputs/infer',
                        help='output folder (default: %(default)s)')
    parser.add_argument('--device', help='cuda, cpu... (default: cuda '
                        'when available)')
    parser.add_argument(
        '--trust-checkpoint', action='store_true',
        help='the checkpoint may be fully unpickled if a weights-only load '
        'refuses it; that runs any code the file carries')
    parser.add_argument(
        '--non-strict', action='store_true',
        help='load a checkpoint that does not fit the model exactly (the '
        'report is printed); the default is an error')
    parser.add_argument(
        '--chat', action='store_true',
        help='chat about one image, reading questions from stdin')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys')
    gis = parser.add_argument_group(
        'GIS and huge scenes (--geojson and --window need the gis extra)')
    gis.add_argument('--bands', type=band_list,
                     help='three band numbers from 1 shown as R,G,B, e.g. '
                     '4,3,2')
    gis.add_argument('--stretch', choices=['percentile', 'range'],
                     help='how samples of more than 8 bits become 0-255')
    gis.add_argument('--geojson', action='store_true',
                     help='also write {stem}.geojson and mask GeoTIFFs in '
                     'the image\'s CRS (georeferenced images only)')
    gis.add_argument('--window', type=int,
                     help='answer each image in windows of N px (huge '
                     'scenes, read window by window), stitched')
    gis.add_argument('--overlap', type=int, default=128,
                     help='pixels shared by neighbouring windows')
    args = parser.parse_args(argv)
    if args.chat and args.prompt:
        parser.error('--chat reads its questions from stdin; drop --prompt')
    if args.task != 'gcg' and not args.prompt and not args.chat:
        parser.error(f'--task {args.task} needs --prompt')
    if args.task == 'gcg' and args.prompt:
        parser.error('--task gcg asks the GeoPixelD question; use --task '
                     'ask for your own')
    if args.batch_size < 1:
        parser.error('--batch-size must be >= 1')
    if args.chat and (args.geojson or args.window):
        parser.error('--chat takes no --geojson or --window')
    if args.window and args.task == 'ask':
        parser.error('--window answers --task gcg or refer')
    return args


def band_list(text):
    try:
        bands = tuple(int(b) for b in text.split(','))
    except ValueError:
        bands = ()
    if len(bands) != 3 or min(bands) < 1:
        raise argparse.ArgumentTypeError(
            f'expected three band numbers from 1, e.g. 4,3,2; got {text!r}')
    return bands


def check_gis(args) -> None:
    """GIS options need rasterio and shapely: fail before the model loads,
    with geopixel.gis's message naming the extra to install."""
    if args.geojson or args.window:
        from geopixel.gis.dependencies import require
        for module in ('rasterio', 'shapely'):
            require(module, '--geojson and --window')


def build_inferencer(args):
    from geopixel.apis import GeoPixelInferencer
    from geopixel.checkpoint import describe_fit
    from geopixel.engine.runner_setup import load_config
    cfg = load_config(args.config, args.cfg_options)
    inferencer = GeoPixelInferencer(
        cfg, weights=args.checkpoint, device=args.device,
        strict=not args.non_strict, trust_checkpoint=args.trust_checkpoint,
        bands=args.bands, stretch=args.stretch, show_progress=False)
    if args.non_strict:
        print(f'loaded {args.checkpoint}: '
              f'{describe_fit(inferencer.load_report)}', file=sys.stderr)
    return inferencer


def expand_inputs(inputs):
    """Every image the INPUTS name, in order."""
    from geopixel.apis import list_images
    images = []
    for item in inputs:
        images.extend(list_images(item))
    return images


def unique_stems(paths):
    """Output stems: file names without extension, keeping the extension
    (``a_tif``) where two inputs would share one, and a counter after
    that."""
    from collections import Counter
    plain = [osp.splitext(osp.basename(p))[0] for p in paths]
    counts = Counter(plain)
    stems, seen = [], set()
    for path, stem in zip(paths, plain):
        if counts[stem] > 1:
            stem = osp.basename(path).replace('.', '_')
        base, k = stem, 1
        while stem in seen:
            stem, k = f'{base}_{k}', k + 1
        seen.add(stem)
        stems.append(stem)
    return stems


def run_images(inferencer, args) -> int:
    from tqdm import tqdm
    images = expand_inputs(args.inputs)
    stems = unique_stems(images)
    collect = len(images) > 1
    step = 1 if args.window else args.batch_size
    failed = []
    with tqdm(total=len(images), desc='images', unit='img',
              disable=len(images) < 2) as bar:
        for start in range(0, len(images), step):
            chunk = list(zip(images[start:start + step],
                             stems[start:start + step]))
            answer = answer_scene if args.window else answer_images
            failed += answer(inferencer, args, chunk, collect)
            bar.update(len(chunk))
    print(f'{len(images) - len(failed)} of {len(images)} image(s) written '
          f'to {args.out}')
    if not failed:
        return 0
    print(f'{len(failed)} input(s) failed:', file=sys.stderr)
    for path, error in failed:
        print(f'  {path}: {error}', file=sys.stderr)
    return PARTIAL_FAILURE


def answer_images(inferencer, args, chunk, collect):
    """Answer a chunk of ``(path, stem)`` and write its files; returns the
    failures as ``(path, error)``."""
    from geopixel.apis.geo import write_result_gis
    from geopixel.utils import BadRecordError
    failed, inputs = [], []
    for path, stem in chunk:
        try:
            inputs.append((open_georeferenced(path, args)
                           if args.geojson else path, stem))
        except BadRecordError as err:
            if not collect:
                raise
            failed.append((path, str(err)))
    try:
        results = inferencer(
            [source for source, _ in inputs], task=args.task,
            prompt=args.prompt, hd_num=args.hd_num,
            batch_size=args.batch_size, collect_errors=collect) if (
                inputs) else []
        for (source, stem), result in zip(inputs, results):
            if not result.ok:
                failed.append((result.image_path, result.error))
                continue
            result.save(args.out, stem)
            if args.geojson:
                write_result_gis(result, source.transform, source.crs,
                                 args.out, stem)
    finally:
        for source, _ in inputs:
            if args.geojson:
                source.close()
    return failed


def open_georeferenced(path, args):
    from geopixel.apis.geo import require_georeferenced
    from geopixel.gis import open_image_source
    source = open_image_source(path, args.bands, args.stretch or
                               'percentile')
    try:
        require_georeferenced(source)
    except BaseException:
        source.close()
        raise
    return source


def answer_scene(inferencer, args, chunk, collect):
    """One huge scene, window by window (``predict_scene``)."""
    from tqdm import tqdm

    from geopixel.utils import BadRecordError
    (path, stem), = chunk
    with tqdm(desc=f'{stem} windows', unit='win', leave=False) as bar:

        def progress(done, total):
            bar.total = total
            bar.update(done - bar.n)

        try:
            inferencer.predict_scene(
                path, args.task, args.prompt, window=args.window,
                overlap=args.overlap, out_dir=args.out, stem=stem,
                hd_num=args.hd_num, geojson=args.geojson, progress=progress)
        except BadRecordError as err:
            if not collect:
                raise
            return [(path, str(err))]
    return []


def run_chat(inferencer, args) -> int:
    images = expand_inputs(args.inputs)
    if len(images) != 1:
        raise SystemExit(f'--chat talks about one image; the inputs name '
                         f'{len(images)}')
    stem = unique_stems(images)[0]
    session = inferencer.session(images[0], hd_num=args.hd_num)
    interactive = sys.stdin.isatty()
    turn = 0
    while True:
        if interactive:
            print('> ', end='', flush=True)
        line = sys.stdin.readline()
        question = line.strip()
        if not line or not question or question == '/exit':
            break
        result = session.chat(question)
        result.save(args.out, f'{stem}_turn{turn}')
        print(result.answer, flush=True)
        turn += 1
    print(f'{turn} turn(s) written to {args.out}', file=sys.stderr)
    return 0


def main(argv=None):
    args = parse_args(argv)
    check_gis(args)
    inferencer = build_inferencer(args)
    status = (run_chat if args.chat else run_images)(inferencer, args)
    if status:
        raise SystemExit(status)


if __name__ == '__main__':
    from geopixel.checkpoint import CheckpointError
    from geopixel.utils import BadRecordError, run_tool
    from geopixel.gis import GISDependencyError
    run_tool(main, (CheckpointError, BadRecordError, FileNotFoundError,
                    GISDependencyError))
