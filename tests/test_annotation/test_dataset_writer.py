"""The pipeline over a COCO file to the GeoPixelD layout: the reader loads
it, phrase kinds survive, runs resume, the HTTP backend drives it, and the
one-command synthetic run gives data the tiny model trains on."""
import json
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest

from geopixel.annotation import (AnnotationPipeline, CocoPatchSource,
                                 annotate_coco, validate_output,
                                 write_report, write_synthetic_source)
from geopixel.annotation.backends import TemplateAnnotator
from geopixel.utils import BadRecordError

from .test_backends_http import StubServer, completion

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def template_pipeline(**kwargs):
    kwargs.setdefault('min_area', 600)
    return AnnotationPipeline(TemplateAnnotator(), TemplateAnnotator(),
                              **kwargs)


def read(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def source(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('source'))
    return write_synthetic_source(root, num_images=2, size=1000, seed=1,
                                  val_every=2)


def u_shape_coco(tmp_path):
    """One 1000 x 1000 image with a U whose two arms cross x = 800: the
    patch [0, 800) holds two pieces of one instance."""
    from geopixel.utils.files import write_png
    image = np.full((1000, 1000, 3), 90, np.uint8)
    write_png(image, str(tmp_path / 'U.png'))
    u = [700, 100, 950, 100, 950, 300, 700, 300, 700, 250, 900, 250,
         900, 150, 700, 150]
    coco = dict(images=[dict(id=1, file_name='U.png', height=1000,
                             width=1000)],
                annotations=[dict(id=7, image_id=1, category_id=1,
                                  segmentation=[u], iscrowd=0)],
                categories=[dict(id=1, name='Bridge')])
    (tmp_path / 'u.json').write_text(json.dumps(coco))
    return str(tmp_path / 'u.json')


def test_output_loads_with_the_geopixeld_reader(source, tmp_path):
    from geopixel.datasets import GeoPixelDDataset
    from geopixel.datasets.transforms import (LoadGroundingMasks,
                                              LoadImageRGB)
    out = str(tmp_path / 'out')
    train = CocoPatchSource(source['train']['ann_file'],
                            source['train']['image_dir'])
    summary = annotate_coco(template_pipeline(), train, out)
    # 1000 px: starts 0 and 200 on each side, four 800 px patches
    assert summary['patches'] == 4
    assert summary['annotated'] == 4 - summary['empty_skipped']
    assert summary['phrases'] == summary['instance'] + summary['group']
    assert summary['phrases'] == (summary['uni_target']
                                  + summary['multi_target'])
    assert summary['objects'] == (summary['patch_instances']
                                  - summary['lost_to_rounding'])
    assert summary['holistic'] == summary['annotated']
    assert validate_output(out) == summary['annotated']
    assert read(osp.join(out, 'summary.json'))['train'] == summary

    records = read(osp.join(out, 'GeoPixelD.json'))
    dataset = GeoPixelDDataset(
        ann_file=osp.join(out, 'GeoPixelD.json'),
        pipeline=[dict(type=LoadImageRGB), dict(type=LoadGroundingMasks)])
    assert len(dataset) == len(records) == summary['annotated']
    results = dataset[0]
    content = read(osp.join(out, records[0]['polygons']))
    assert results['gt_masks'].shape == (len(content['phrases']), 800, 800)
    assert results['mask_instance_counts'] == [
        p['num_instances'] for p in content['phrases']
    ]
    # the official record layout, and ours beside it
    assert records[0]['conversations'][1]['value'] == \
        content['gcg_description']
    assert set(content) >= {'id', 'img', 'gcg_description', 'polygons',
                            'num_instances', 'phrases', 'markers', 'texts',
                            'annotation'}
    for phrase in content['phrases']:
        assert phrase['level'] in ('instance', 'group')
        assert (phrase['marker'] is None) == (phrase['level'] == 'group')
    assert osp.isfile(osp.join(out, 'marked', 'train',
                               osp.basename(records[0]['image'])))
    index = write_report(out, num_samples=2)
    html = open(index).read()
    assert html.count('class="card"') == 2


def test_test_split_reads_as_a_folder_too(source, tmp_path):
    from geopixel.datasets import GeoPixelDDataset
    out = str(tmp_path / 'out')
    val = CocoPatchSource(source['val']['ann_file'],
                          source['val']['image_dir'])
    summary = annotate_coco(template_pipeline(), val, out, split='test')
    assert summary['records_file'] == 'GeoPixelD_test.json'
    assert validate_output(out, 'test') == summary['annotated']
    folder = GeoPixelDDataset(ann_file=osp.join(out, 'GeoPixelD', 'test'))
    assert len(folder) == summary['annotated']


def test_a_clipped_instance_in_two_pieces_stays_one_instance(tmp_path):
    from geopixel.datasets import GeoPixelDDataset
    from geopixel.datasets.transforms import (LoadGroundingMasks,
                                              LoadImageRGB)
    ann_file = u_shape_coco(tmp_path)
    out = str(tmp_path / 'out')
    annotate_coco(template_pipeline(min_area=100),
                  CocoPatchSource(ann_file, str(tmp_path)), out)
    content = read(osp.join(out, 'GeoPixelD', 'train',
                            'U_0_800_0_800.json'))
    assert len(content['polygons'][0]) == 2  # two pieces...
    assert content['num_instances'] == [1]   # ...of one bridge
    assert content['phrases'][0]['level'] == 'instance'
    assert content['phrases'][0]['annotation_ids'] == [7]
    dataset = GeoPixelDDataset(
        ann_file=osp.join(out, 'GeoPixelD.json'),
        pipeline=[dict(type=LoadImageRGB), dict(type=LoadGroundingMasks)])
    by_name = {osp.basename(dataset[i]['img_path']): dataset[i]
               for i in range(len(dataset))}
    assert by_name['U_0_800_0_800.png']['mask_instance_counts'] == [1]
    # the reader refuses a num_instances that does not fit the masks
    path = osp.join(out, 'GeoPixelD', 'train', 'U_0_800_0_800.json')
    content['num_instances'] = [1, 1]
    with open(path, 'w') as f:
        json.dump(content, f)
    with pytest.raises(BadRecordError, match='num_instances.*U_0_800_0_800'
                       '|U_0_800_0_800.*num_instances'):
        validate_output(out)


def test_runs_resume_and_refuse_other_settings(source, tmp_path):
    out = str(tmp_path / 'out')
    train = CocoPatchSource(source['train']['ann_file'],
                            source['train']['image_dir'])
    first = annotate_coco(template_pipeline(), train, out)
    # a run that stopped half way: one patch's JSON is missing
    records = read(osp.join(out, 'GeoPixelD.json'))
    gone = osp.join(out, records[-1]['polygons'])
    before = read(gone)
    os.remove(gone)
    again = annotate_coco(template_pipeline(), train, out)
    assert again['resumed'] == first['annotated'] - 1
    assert read(gone) == before  # annotated again, identically
    assert read(osp.join(out, 'GeoPixelD.json')) == records
    with pytest.raises(BadRecordError, match='other settings'):
        annotate_coco(template_pipeline(min_area=900), train, out)
    with pytest.raises(BadRecordError, match='pass resume'):
        annotate_coco(template_pipeline(), train, out, resume=False)


def test_the_http_backend_drives_the_pipeline(source, tmp_path,
                                              monkeypatch):
    for name in ('http_proxy', 'HTTP_PROXY', 'all_proxy', 'ALL_PROXY'):
        monkeypatch.delenv(name, raising=False)

    def reply(payload):
        content = payload['messages'][-1]['content']
        text = content if isinstance(content, str) else content[0]['text']
        if text.startswith('Rewrite'):
            return 200, completion('Overall, ' + text.split(
                'Description: ', 1)[1])
        found = re.search(r'is a ([a-z ]+?) in the|describe these ([a-z ]+?)'
                          r' as a group', text)
        if found is None:  # the holistic caption
            return 200, completion('An aerial view of a coast (label 3).')
        noun = found.group(1) or found.group(2)
        return 200, completion(f'The {noun}, marked 2, looks ordinary.')

    server = StubServer(reply)
    try:
        backend = dict(type='OpenAICompatibleAnnotator',
                       base_url=server.base_url, model='stub',
                       retry_wait=0.001, timeout=5)
        pipeline = AnnotationPipeline(backend, backend, min_area=600)
        out = str(tmp_path / 'out')
        summary = annotate_coco(
            pipeline, CocoPatchSource(source['val']['ann_file'],
                                      source['val']['image_dir']), out,
            split='test')
    finally:
        server.close()
    assert validate_output(out, 'test') == summary['annotated'] > 0
    images = [r for r in server.requests
              if 'image_url' in r['body'].decode()]
    assert images, 'the marked patches were posted'
    assert summary['paraphrase_fallbacks'] == 0
    assert summary['filtered']['marker_ids'] >= summary['phrases']
    content = read(osp.join(
        out, read(osp.join(out, 'GeoPixelD_test.json'))[0]['polygons']))
    assert content['gcg_description'].startswith('Overall, ')
    assert 'marked 2' not in content['gcg_description']
    assert 'label 3' not in content['gcg_description']


@pytest.mark.slow
def test_one_command_synthetic_run_trains_the_tiny_model(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    out = tmp_path / 'data' / 'annotated'
    done = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'annotate', 'annotate.py'),
         osp.join(REPO, 'configs', 'annotation', 'template_synthetic.py'),
         '--synthetic', '5', '--out', str(out), '--report', '2'],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary['train']['validated_records'] == \
        summary['train']['annotated'] > 0
    assert summary['test']['validated_records'] > 0
    assert osp.isfile(out / 'tokenizer' / 'tokenizer.model')
    assert osp.isfile(summary['report']['train'])
    train = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'train.py'),
         osp.join(REPO, 'configs', 'geopixel', 'gcg_tiny_annotated.py'),
         '--work-dir', str(tmp_path / 'work'), '--cfg-options',
         'train_cfg.max_iters=3', 'train_dataloader.num_workers=0',
         'train_dataloader.persistent_workers=False',
         'default_hooks.logger.interval=1'],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-3000:]
    log = train.stdout + train.stderr
    losses = [float(v) for v in re.findall(r'Iter\(train\) \[\d/3\].*? '
                                           r'loss: ([\d.]+)', log)]
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert (tmp_path / 'work' / 'iter_3.pth').exists()


def test_empty_patches_are_skipped_or_kept_as_captions(tmp_path):
    from geopixel.utils.files import write_png
    write_png(np.full((300, 300, 3), 60, np.uint8), str(tmp_path / 'E.png'))
    coco = dict(images=[dict(id=1, file_name='E.png')], annotations=[],
                categories=[dict(id=1, name='ship')])
    (tmp_path / 'e.json').write_text(json.dumps(coco))
    source = CocoPatchSource(str(tmp_path / 'e.json'), str(tmp_path))
    skipped = annotate_coco(template_pipeline(), source,
                            str(tmp_path / 'a'))
    assert (skipped['empty_skipped'], skipped['annotated']) == (1, 0)
    kept = annotate_coco(template_pipeline(), source, str(tmp_path / 'b'),
                         skip_empty=False)
    assert (kept['annotated'], kept['holistic'], kept['phrases']) == (1, 1,
                                                                     0)
    assert validate_output(str(tmp_path / 'b')) == 1


@pytest.mark.parametrize('name', ['template', 'template_synthetic',
                                  'openai_endpoint', 'local_vlm'])
def test_annotation_configs_build(name):
    from mmengine.config import Config

    from geopixel.annotation.backends import AnnotatorError
    sys.path.insert(0, osp.join(REPO, 'tools', 'annotate'))
    try:
        from annotate import build_pipeline
    finally:
        sys.path.pop(0)
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'annotation',
                                   name + '.py'))
    if name == 'local_vlm':  # the model folders are the user's
        with pytest.raises(AnnotatorError,
                           match='checkpoints/Qwen2-VL-7B-Instruct'):
            build_pipeline(cfg)
        return
    pipeline = build_pipeline(cfg)
    assert pipeline.min_area == (600 if name == 'template_synthetic' else
                                 1600)
    assert pipeline.paraphraser is not None


def test_several_workers_write_the_same_dataset(source, tmp_path):
    train = CocoPatchSource(source['train']['ann_file'],
                            source['train']['image_dir'])
    one = annotate_coco(template_pipeline(), train, str(tmp_path / 'one'))
    three = annotate_coco(template_pipeline(), train,
                          str(tmp_path / 'three'), num_workers=3)
    drop = ('seconds', )
    assert {k: v for k, v in one.items() if k not in drop} == \
        {k: v for k, v in three.items() if k not in drop}
    records = read(str(tmp_path / 'one' / 'GeoPixelD.json'))
    assert records == read(str(tmp_path / 'three' / 'GeoPixelD.json'))
    for record in records:
        assert read(str(tmp_path / 'one' / record['polygons'])) == read(
            str(tmp_path / 'three' / record['polygons']))
    with pytest.raises(ValueError, match='num_workers'):
        annotate_coco(template_pipeline(), train, str(tmp_path / 'x'),
                      num_workers=0)


def test_release_style_paths(source, tmp_path):
    out = str(tmp_path / 'data')
    val = CocoPatchSource(source['val']['ann_file'],
                          source['val']['image_dir'])
    annotate_coco(template_pipeline(), val, out, path_prefix='data/')
    record = read(osp.join(out, 'GeoPixelD.json'))[0]
    assert record['image'].startswith('data/GeoPixelD/train/')
    assert record['polygons'].startswith('data/GeoPixelD/train/')
    content = read(osp.join(out, record['polygons'][len('data/'):]))
    assert content['img'] == record['image']
    assert validate_output(out) > 0
    assert osp.isfile(write_report(out, num_samples=1))


def test_a_failing_backend_names_the_patch_and_the_run_resumes(source,
                                                              tmp_path):
    from geopixel.annotation.backends import AnnotatorBackend, AnnotatorError

    class Down(AnnotatorBackend):
        """Answers the first ``n`` requests, then the server is gone."""

        def __init__(self, n):
            self.n, self.template = n, TemplateAnnotator()

        def generate(self, request):
            self.n -= 1
            if self.n < 0:
                raise AnnotatorError('connection refused')
            return self.template.generate(request)

    out = str(tmp_path / 'out')
    train = CocoPatchSource(source['train']['ann_file'],
                            source['train']['image_dir'])
    pipeline = AnnotationPipeline(Down(20), TemplateAnnotator(),
                                  min_area=600)
    with pytest.raises(AnnotatorError,
                       match=r'patch S\d+_\d+_\d+_\d+_\d+\.png of S\d+\.png'
                       ': connection refused'):
        annotate_coco(pipeline, train, out)
    done = os.listdir(osp.join(out, 'GeoPixelD', 'train'))
    assert any(n.endswith('.json') for n in done)
    pipeline.annotator.n = 10**6  # the server is back
    summary = annotate_coco(pipeline, train, out)
    assert 0 < summary['resumed'] < summary['annotated']
    fresh = annotate_coco(template_pipeline(), train, str(tmp_path / 'new'))
    for record in read(osp.join(out, 'GeoPixelD.json')):
        assert read(osp.join(out, record['polygons']))['gcg_description'] \
            == read(osp.join(str(tmp_path / 'new'), record['polygons'])
                    )['gcg_description']
    assert fresh['phrases'] == summary['phrases']
