"""Inference speed and memory of the tiny model, through GeoPixelInferencer.

    python tools/analysis/benchmark_inference.py [--parts throughput
        questions scenes] [--hd 1 4 9] [--batch 1 4 8] [--images 16]
        [--tokens 32] [--questions 8] [--questions-hd 9]
        [--scenes 4096 16384]
        [--window 1024] [--out work_dirs/benchmark_inference.json]

Builds the tiny GeoPixel (``configs/geopixel/gcg_tiny.py``, random
weights) on a synthetic dataset it writes to a temporary folder, then:

* ``throughput``: images/s of grounded descriptions over ``--images``
  512 px synthetic scenes at every hd_num x batch size (every answer is
  ``--tokens`` tokens long: EOS is not allowed to end it early, so batch
  sizes compare);
* ``questions``: ``--questions`` referring questions about one image at
  ``--questions-hd`` through one session (image and its prefix encoded
  once) against the same questions as separate runs, with the answer given
  (teacher forced) and generated;
* ``scenes``: peak resident memory of a referring-segmentation run over a
  georeferenced GeoTIFF of each ``--scenes`` size (square, written block
  by block from synthetic scenes: ``write_scene_geotiff``, what
  ``tools/misc/make_scene.py --geotiff`` writes), each in a fresh
  process, so the peak is that run's. The peak must not grow with the scene.

Run one benchmark at a time on a quiet machine; set
MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ on CPU.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)
CONFIG = osp.join(REPO, 'configs', 'geopixel', 'gcg_tiny.py')


def build_inferencer(root: str):
    from geopixel.apis import GeoPixelInferencer
    from geopixel.testing import get_config, tiny_model, toy_dataset
    if not osp.isdir(osp.join(root, 'tokenizer')):
        toy_dataset(root, num_images=12, size=256, seed=3)
    cfg = get_config(CONFIG, root)
    model = tiny_model(cfg).eval()
    return GeoPixelInferencer(model, cfg=cfg, device='cpu',
                              show_progress=False)


def scene_images(n: int, size: int = 512, seed: int = 0):
    import numpy as np

    from geopixel.datasets.synthetic import SceneGenerator
    rng = np.random.default_rng(seed)
    generator = SceneGenerator(size, size)
    return [generator(rng).image for _ in range(n)]


def throughput(inferencer, args) -> list:
    images = scene_images(args.images)
    no_eos = dict(max_new_tokens=args.tokens, forced_ids=None)
    eos = list(inferencer.model.eos_token_ids)
    rows = []
    for hd in args.hd:
        for batch in args.batch:
            inferencer(images[:batch], 'gcg', hd_num=hd, batch_size=batch,
                       generation_cfg=dict(no_eos, max_new_tokens=2))
            inferencer.model.eos_token_ids = [-1]  # full-length answers
            try:
                start = time.perf_counter()
                results = inferencer(images, 'gcg', hd_num=hd,
                                     batch_size=batch, generation_cfg=no_eos)
                seconds = time.perf_counter() - start
            finally:
                inferencer.model.eos_token_ids = eos
            stages = {
                k: round(sum(r.timings.get(k, 0) for r in results) /
                         len(results) * 1000, 2)
                for k in results[0].timings
            }
            rows.append(dict(
                hd_num=hd, batch=batch, images=len(images),
                tokens_per_answer=args.tokens,
                images_per_s=round(len(images) / seconds, 3),
                ms_per_image_by_stage=stages))
            print(rows[-1], flush=True)
    return rows


def questions(inferencer, args) -> list:
    """N referring questions about one image: separate runs against one
    session, answers given (teacher forced: the image dominates) and
    generated (``--tokens`` tokens each: decoding dominates)."""
    image = scene_images(1, seed=1)[0]
    prompts = [f'the {c} object number {i}' for i, c in enumerate(
        ['red', 'blue', 'large', 'small', 'left', 'right', 'top', 'bottom'] *
        4)][:args.questions]
    rows = []
    for mode in ('teacher_forced', 'generate'):
        kwargs = dict(hd_num=args.questions_hd, answer_mode=mode,
                      generation_cfg=dict(max_new_tokens=args.tokens))
        inferencer(image, 'refer', prompt=prompts[0], **kwargs)  # warm-up
        start = time.perf_counter()
        separate = [
            inferencer(image, 'refer', prompt=p, **kwargs)[0]
            for p in prompts
        ]
        t_separate = time.perf_counter() - start
        start = time.perf_counter()
        session = inferencer.session(image, hd_num=args.questions_hd,
                                     generation_cfg=kwargs['generation_cfg'])
        shared = [session.ask(p, task='refer', answer_mode=mode)
                  for p in prompts]
        t_session = time.perf_counter() - start
        same = all(a.answer == b.answer and (a.masks == b.masks).all()
                   for a, b in zip(separate, shared))
        one = t_separate / len(prompts)
        rows.append(dict(
            answer_mode=mode, hd_num=args.questions_hd,
            questions=len(prompts), separate_runs_s=round(t_separate, 3),
            one_session_s=round(t_session, 3),
            session_in_single_questions=round(t_session / one, 2),
            speedup=round(t_separate / t_session, 2), same_answers=same))
        print(rows[-1], flush=True)
    return rows


def scene_run(root: str, path: str, window: int, out_dir: str) -> dict:
    """One referring run over the scene (in this process); peak RSS."""
    inferencer = build_inferencer(root)
    start = time.perf_counter()
    scene = inferencer.predict_scene(path, 'refer',
                                     prompt='the small vehicle',
                                     window=window, overlap=window // 8,
                                     out_dir=out_dir)
    seconds = time.perf_counter() - start
    with open('/proc/self/status') as f:
        peak_kb = next(int(line.split()[1]) for line in f
                       if line.startswith('VmHWM'))
    return dict(windows=len(scene.windows), seconds=round(seconds, 1),
                peak_rss_mib=round(peak_kb / 1024, 1))


def scenes(root: str, args) -> list:
    from geopixel.datasets.synthetic import write_scene_geotiff
    rows = []
    for size in args.scenes:
        path = osp.join(root, f'scene_{size}.tif')
        if not osp.exists(path):
            write_scene_geotiff(path, size)
        out = subprocess.run(
            [sys.executable, __file__, '--scene-run', path, '--root', root,
             '--window', str(args.window)],
            check=True, capture_output=True, text=True)
        row = dict(json.loads(out.stdout.strip().splitlines()[-1]),
                   scene_px=size, file_mib=round(
                       osp.getsize(path) / 2**20, 1),
                   decoded_scene_mib=round(size * size * 3 / 2**20, 1))
        rows.append(row)
        print(row, flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--parts', nargs='+',
                        default=['throughput', 'questions', 'scenes'])
    parser.add_argument('--hd', type=int, nargs='+', default=[1, 4, 9])
    parser.add_argument('--batch', type=int, nargs='+', default=[1, 4, 8])
    parser.add_argument('--images', type=int, default=16)
    parser.add_argument('--tokens', type=int, default=32)
    parser.add_argument('--questions', type=int, default=8)
    parser.add_argument('--questions-hd', type=int, default=9)
    parser.add_argument('--scenes', type=int, nargs='+',
                        default=[4096, 16384])
    parser.add_argument('--window', type=int, default=1024)
    parser.add_argument('--root', help='work folder (default: a temporary '
                        'one)')
    parser.add_argument('--scene-run', help=argparse.SUPPRESS)
    parser.add_argument('--out', default='work_dirs/benchmark_inference.json')
    args = parser.parse_args(argv)
    from geopixel.engine import setup_mmengine
    setup_mmengine()
    if args.scene_run:  # the child process of the scenes part
        with tempfile.TemporaryDirectory() as out_dir:
            print(json.dumps(scene_run(args.root, args.scene_run,
                                       args.window, out_dir)))
        return
    import torch
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or tmp
        summary = dict(threads=torch.get_num_threads(),
                       malloc_tuned='MALLOC_MMAP_THRESHOLD_' in os.environ)
        if {'throughput', 'questions'} & set(args.parts):
            inferencer = build_inferencer(root)
            if 'throughput' in args.parts:
                summary['throughput'] = throughput(inferencer, args)
            if 'questions' in args.parts:
                summary['questions'] = questions(inferencer, args)
        if 'scenes' in args.parts:
            summary['scenes'] = scenes(root, args)
    os.makedirs(osp.dirname(args.out) or '.', exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))


if __name__ == '__main__':
    main()
