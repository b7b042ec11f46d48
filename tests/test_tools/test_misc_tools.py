"""The small command-line tools."""
import json
import os
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def run(args, cwd=REPO):
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable] + args, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_list_components():
    table = json.loads(run(['tools/misc/list_components.py', '--json']))
    assert set(table) == {
        'MODELS', 'DATASETS', 'TRANSFORMS', 'METRICS', 'HOOKS', 'VISUALIZERS',
        'INFERENCERS', 'TILERS', 'VISION_ENCODERS', 'LLM_ADAPTERS',
        'GROUNDING_ENCODERS', 'MASK_DECODERS', 'TOKENIZERS', 'ANNOTATORS'
    }
    assert 'InternLM2Tokenizer' in table['TOKENIZERS']
    assert {'TemplateAnnotator', 'OpenAICompatibleAnnotator',
            'TransformersAnnotator'} <= set(table['ANNOTATORS'])
    assert table['TILERS']['AdaptiveHDTiler'].endswith('AdaptiveHDTiler')
    assert 'GeoPixelDDataset' in table['DATASETS']
    assert 'DiceLoss' in table['MODELS']


def test_print_config(tmp_path):
    out = run(['tools/misc/print_config.py',
               'configs/_base_/datasets/synthetic_rrsis.py', '--cfg-options',
               'train_dataloader.batch_size=7', '--save-path',
               str(tmp_path / 'c.py')])
    assert 'batch_size=7' in out
    assert (tmp_path / 'c.py').exists()


USER_CONFIG = """from mmengine.config import read_base

with read_base():
    from geopixel.configs._base_.datasets.synthetic_gcg import *  # noqa
"""


def test_make_synthetic_and_browse_dataset(tmp_path):
    data = tmp_path / 'data' / 'synthetic'
    out = run(['tools/dataset_converters/make_synthetic.py', '--out',
               str(data), '--num-images', '6', '--size', '192'])
    assert '"num_images": 6' in out
    # a user's config inheriting the documented way (absolute import)
    config = tmp_path / 'my_config.py'
    config.write_text(USER_CONFIG)
    assert 'synthetic/geopixeld' in run(
        [osp.join(REPO, 'tools/misc/print_config.py'), str(config)],
        cwd=str(tmp_path))
    browse = tmp_path / 'browse'
    run([osp.join(REPO, 'tools/misc/browse_dataset.py'), str(config),
         '--output-dir', str(browse), '--max-draw', '2'], cwd=str(tmp_path))
    summary = json.load(open(browse / 'summary.json'))
    meta = json.load(open(data / 'meta.json'))
    assert summary['checked'] == meta['geopixeld']['train']
    assert summary['image_tokens']['min'] == 145  # hd 1, 224 px tiles
    assert summary['bad_records']['skipped_at_runtime'] == 0
    assert summary['overlays_written'] == 2
    assert len([f for f in os.listdir(browse) if f.endswith('.png')]) == 2
