"""Web demo: upload an aerial image, ask, see the grounded answer; and the
annotation pipeline on a generated scene.

    python tools/demo/app.py                       # the quick start's model
    python tools/demo/app.py CONFIG CHECKPOINT [--port 7860] [--host 127.0.0.1]

Upload a PNG, JPEG or GeoTIFF, choose the task (grounded description,
referring segmentation, free question), ask, and see the answer with each
phrase in its mask's colour, the overlay with a legend, a toggle per mask,
the timings and the files (JSON, mask PNGs, GeoJSON for a georeferenced
image). Follow-up questions about the same image reuse its encoding; one
question runs at a time (a queue). Bound to 127.0.0.1 unless ``--host``
says otherwise. Needs the ``demo`` extra (``requirements/demo.txt``).
docs/en/user_guides/demo.md has the details.
"""
import argparse
import logging
import os
import os.path as osp
import sys
import tempfile

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

QUICKSTART_CONFIG = 'configs/geopixel/rrsis_tiny.py'
QUICKSTART_WORK_DIR = 'work_dirs/quickstart'
CSS = """
.gp-answer {font-size: 1.05em; line-height: 1.9;}
.gp-phrase, .gp-seg {padding: 1px 5px; border-radius: 4px;
    border: 1px solid #333; color: #000;}
.gp-seg {font-size: 0.85em;}
"""
logger = logging.getLogger('geopixel.demo')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', nargs='?',
                        help=f'model config (default: {QUICKSTART_CONFIG}, '
                        'with the quick start\'s checkpoint)')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint to load')
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to bind (0.0.0.0 exposes the demo to '
                        'your network)')
    parser.add_argument('--port', type=int, default=7860)
    parser.add_argument('--device', default=None,
                        help='cuda or cpu (default: cuda when available)')
    parser.add_argument('--max-upload-mb', type=float, default=25.0)
    parser.add_argument('--max-pixels', type=int, default=4096 * 4096,
                        help='largest width x height accepted')
    parser.add_argument('--hd-num', type=int, default=None,
                        help='tile budget per image (default: the config\'s)')
    parser.add_argument('--no-examples', action='store_true',
                        help='do not generate the synthetic example scenes')
    args = parser.parse_args(argv)
    if (args.config is None) != (args.checkpoint is None):
        parser.error('give both CONFIG and CHECKPOINT, or neither (the quick '
                     'start\'s model)')
    return args


def quickstart_model(repo: str = REPO):
    """The quick start's config and last checkpoint, or a SystemExit that
    says how to get them."""
    marker = osp.join(repo, QUICKSTART_WORK_DIR, 'last_checkpoint')
    if not osp.isfile(marker):
        raise SystemExit(
            f'no quick-start checkpoint ({marker} is missing): run '
            '`bash tools/quickstart.sh` first, or pass CONFIG CHECKPOINT')
    with open(marker) as f:
        name = osp.basename(f.read().strip())
    checkpoint = osp.join(repo, QUICKSTART_WORK_DIR, name)
    if not osp.isfile(checkpoint):
        raise SystemExit(f'{marker} names {checkpoint}, which is missing: '
                         'run `bash tools/quickstart.sh` again')
    return osp.join(repo, QUICKSTART_CONFIG), checkpoint


def make_examples(folder: str) -> list:
    """Synthetic scenes (generated here, seeds the synthetic training data
    does not use) as example rows ``[file, task, question]``."""
    from geopixel.datasets.synthetic import write_scene
    rows = []
    for seed in (4242, 4343):
        out = osp.join(folder, f'scene_{seed}')
        write_scene(out, seed, 256)
        png = osp.join(out, 'scene.png')
        with open(osp.join(out, 'expressions.txt')) as f:
            expression = f.readline().strip()
        rows.append([png, 'Grounded description', ''])
        rows.append([png, 'Referring segmentation', expression])
    try:
        from geopixel.datasets.synthetic import write_scene_geotiff
        tif = osp.join(folder, 'scene_4444.tif')
        write_scene_geotiff(tif, 512, seed=4444)
        rows.append([tif, 'Grounded description', ''])
    except ImportError:  # no gis extra: PNG examples only
        pass
    return rows


def annotation_tab():
    """The annotation pipeline on a generated scene with the offline
    template backend: no model, no data (docs/en/user_guides/annotation.md).
    """
    import gradio as gr

    def annotate(seed, min_area):
        from geopixel.annotation import AnnotationPipeline
        from geopixel.annotation.backends import TemplateAnnotator
        from geopixel.annotation.preview import preview_synthetic_scene
        pipeline = AnnotationPipeline(TemplateAnnotator(),
                                      TemplateAnnotator(),
                                      min_area=float(min_area))
        preview = preview_synthetic_scene(int(seed), 800, pipeline)
        ann = preview.annotation
        record = dict(gcg_description=ann.description,
                      phrases=[p.record() for p in ann.phrases],
                      texts=ann.texts, annotation=ann.info)
        counts = ann.counts
        status = (f'{counts["instance"]} instance and {counts["group"]} '
                  f'group phrase(s) over {counts["objects"]} objects; '
                  f'{len(ann.markers)} marker(s).')
        return (preview.marked, preview.overlay,
                f'<div class="gp-answer">{preview.html}</div>', status,
                record)

    gr.Markdown('A generated scene (not from any dataset) through the '
                'annotation pipeline with the offline template backend: '
                'numbered markers on the prominent objects, a description '
                'per instance and per group of the rest, `phrase-N` '
                'marking, paraphrase with every phrase kept. '
                '`tools/annotate/annotate.py` does this for a dataset.')
    with gr.Row():
        seed = gr.Number(value=0, precision=0, label='Scene seed',
                         elem_id='gp-ann-seed')
        min_area = gr.Slider(100, 5000, value=600, step=100,
                             label='Prominent from (mask pixels)',
                             elem_id='gp-ann-min-area')
        button = gr.Button('Make and annotate a scene', variant='primary',
                           elem_id='gp-ann-run')
    with gr.Row():
        marked = gr.Image(label='What the annotator sees (marked)',
                          interactive=False, elem_id='gp-ann-marked')
        overlay = gr.Image(label='Grounded masks', interactive=False,
                           elem_id='gp-ann-overlay')
    text = gr.HTML(elem_id='gp-ann-text')
    status = gr.Markdown(elem_id='gp-ann-status')
    record = gr.JSON(label='Per-image record (phrases, texts, checks)',
                     elem_id='gp-ann-record')
    button.click(annotate, [seed, min_area],
                 [marked, overlay, text, status, record],
                 concurrency_id='model')


def build_demo(backend, examples=(), title='GeoPixel demo'):
    """The gradio page around ``backend`` (a ``DemoBackend``)."""
    import gradio as gr

    from geopixel.apis.demo import TASKS, DemoInputError

    def preview(path):
        if not path:
            return None, ''
        try:
            session, source, _ = backend.session(path)
        except DemoInputError as exc:
            return None, f'**Error:** {exc}'
        return session.item['rgb'], (
            f'{osp.basename(path)}: {source.width} x {source.height} px' +
            (', georeferenced' if source.transform is not None else ''))

    def failed(message):
        # answer, status, overlay, files, mask toggles, state
        return (None, message, None, None, gr.update(choices=[], value=[]),
                None)

    def ask(path, task, question):
        try:
            answer = backend.answer(path, task, question)
        except DemoInputError as exc:
            return failed(f'**Error:** {exc}')
        except Exception as exc:  # the page shows no stack trace
            logger.exception('answering failed')
            return failed('**Error:** the model failed on this input '
                          f'({type(exc).__name__}); see the server log.')
        status = answer.timings_text()
        if not answer.labels:
            status += ' The answer grounds no phrase (no [SEG]).'
        return (answer.html, status, answer.overlay(), answer.files,
                gr.update(choices=answer.labels, value=answer.labels),
                answer)

    def toggle(answer, shown):
        if answer is None:
            return None
        keep = [answer.labels.index(s) for s in shown or []
                if s in answer.labels]
        return answer.overlay(keep)

    with gr.Blocks(title=title) as demo:
        gr.Markdown(f'# {title}')
        with gr.Tab('Ask the model', elem_id='gp-tab-ask'):
            gr.Markdown('Upload an aerial image (PNG, JPEG or GeoTIFF), '
                        'choose a task, ask. Limits: '
                        f'{backend.limits.max_upload_mb:g} MB, '
                        f'{backend.limits.max_pixels:,} pixels.')
            with gr.Row():
                with gr.Column():
                    upload = gr.File(
                        label='Image', type='filepath',
                        file_types=['.png', '.jpg', '.jpeg', '.tif',
                                    '.tiff'], elem_id='gp-upload')
                    shown = gr.Image(label='Uploaded image',
                                     interactive=False, elem_id='gp-preview')
                    info = gr.Markdown(elem_id='gp-info')
                    task = gr.Radio(list(TASKS), value='Grounded description',
                                    label='Task', elem_id='gp-task')
                    question = gr.Textbox(
                        label='Question or expression (not used by the '
                        'grounded description)', elem_id='gp-question')
                    button = gr.Button('Ask', variant='primary',
                                       elem_id='gp-ask')
                with gr.Column():
                    answer_box = gr.HTML(elem_id='gp-answer')
                    status = gr.Markdown(elem_id='gp-status')
                    overlay = gr.Image(label='Overlay', interactive=False,
                                       elem_id='gp-overlay')
                    masks = gr.CheckboxGroup(label='Masks shown', choices=[],
                                             elem_id='gp-masks')
                    files = gr.File(label='Downloads', file_count='multiple',
                                    elem_id='gp-files')
            state = gr.State(None)
            if examples:
                gr.Examples(examples=list(examples),
                            inputs=[upload, task, question],
                            label='Synthetic scenes (generated, not from any '
                            'dataset)')
        with gr.Tab('Annotation pipeline', elem_id='gp-tab-annotate'):
            annotation_tab()
        # one queue for everything that runs the model: one user at a time
        upload.change(preview, upload, [shown, info], concurrency_id='model')
        outputs = [answer_box, status, overlay, files, masks, state]
        button.click(ask, [upload, task, question], outputs,
                     concurrency_id='model')
        question.submit(ask, [upload, task, question], outputs,
                        concurrency_id='model')
        masks.change(toggle, [state, masks], overlay)
    return demo


def main(argv=None):
    args = parse_args(argv)
    if args.config:
        config, checkpoint = args.config, args.checkpoint
    else:
        config, checkpoint = quickstart_model()
        os.chdir(REPO)  # the quick start's config reads data/synthetic/
    from geopixel.apis import GeoPixelInferencer
    from geopixel.apis.demo import DemoBackend, DemoLimits
    from geopixel.engine import setup_mmengine
    setup_mmengine()
    limits = DemoLimits(args.max_upload_mb, args.max_pixels)
    inferencer = GeoPixelInferencer(config, checkpoint, device=args.device,
                                    show_progress=False)
    backend = DemoBackend(inferencer, limits, hd_num=args.hd_num)
    examples = ([] if args.no_examples else make_examples(
        tempfile.mkdtemp(prefix='geopixel_demo_examples_')))
    demo = build_demo(backend, examples)
    launch(demo, backend, args.host, args.port)


def launch(demo, backend, host: str, port: int, block: bool = True):
    """Queue (one question at a time) and serve ``demo``."""
    demo.queue(default_concurrency_limit=1)
    return demo.launch(
        server_name=host, server_port=port,
        max_file_size=int(backend.limits.max_upload_mb * 1024 * 1024),
        allowed_paths=[backend.out_dir], show_error=False,
        prevent_thread_lock=not block, css=CSS)


if __name__ == '__main__':
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    main()
