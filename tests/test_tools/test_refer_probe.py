"""tools/analysis/refer_probe.py end to end on the tiny model (random
weights): its JSON, and its model scores equal to the config's own
teacher-forced prediction."""
import json
import os.path as osp
import pickle
import shutil

import pytest
import torch
from mmengine.dataset import pseudo_collate

from geopixel.evaluation.metrics import RRSISMetric
from geopixel.registry import DATASETS
from geopixel.testing import get_config, tiny_model
from tests.test_evaluation.test_gcg_files import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'geopixel/configs/geopixel/rrsis_tiny.py')


@pytest.fixture(scope='module')
def tool():
    return load_tool('refer_probe')


@pytest.fixture(scope='module')
def workspace(synthetic_root, tmp_path_factory):
    """A folder with a checkpoint of the tiny RRSIS model."""
    root = tmp_path_factory.mktemp('refer_probe')
    cfg = get_config(CONFIG, synthetic_root)
    torch.save(tiny_model(cfg).state_dict(), root / 'rrsis.pth')
    return root


@pytest.mark.slow
def test_tool_reports_and_scores_like_the_test_loop(tool, workspace,
                                                    synthetic_root):
    out = workspace / 'probe.json'
    tool.main([CONFIG, str(workspace / 'rrsis.pth'), '--out', str(out),
               '--synthetic-root', synthetic_root, '--device', 'cpu'])
    result = json.load(open(out))
    assert result['split'] == 'test'
    assert result['answer_mode'] == 'teacher_forced'
    assert result['expression_types']['available']
    n = result['samples']
    assert sum(result['expression_types']['counts'].values()) == n
    assert set(result['scores']) == {'model', 'all_zero', 'whole_image',
                                     'all_objects'}
    model_scores = result['scores']['model']
    assert sum(t['samples'] for t in model_scores['by_type'].values()) == n
    swap = result['swap']
    assert swap['samples'] == round(swap['eligible_fraction'] * n) > 0
    assert 0 <= swap['changed_fraction'] <= 1
    for kind in ('seg_state', 'seg_prompt'):
        spread = result['seg']['spread'][kind]
        assert spread['pairs']['all_pairs'] == n * (n - 1) // 2
        for target in ('category', 'colour'):
            probe = result['seg']['linear_probe'][target][kind]
            assert probe['train_samples'] + probe['test_samples'] == n

    # the same model, the config's test loop (teacher-forced pipeline)
    cfg = get_config(CONFIG, synthetic_root)
    model = tiny_model(cfg).eval()
    metric = RRSISMetric()
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    for k in range(n):  # batch 1, as the config's test loop
        outputs = model.test_step(pseudo_collate([dataset[k]]))
        metric.process(None, [o.to_dict() for o in outputs])
    expected = metric.compute_metrics(metric.results)
    assert model_scores['overall'] == pytest.approx(expected, abs=1e-9)


@pytest.mark.slow
def test_data_without_records_and_max_samples(tool, workspace,
                                              synthetic_root, tmp_path):
    root = tmp_path / 'rrsisd'
    shutil.copytree(osp.join(synthetic_root, 'rrsisd'), root)
    refs_file = root / 'rrsisd' / 'refs(unc).p'
    refs = pickle.load(open(refs_file, 'rb'))
    for ref in refs:
        del ref['target']
        for sent in ref['sentences']:
            del sent['unique_by']
    pickle.dump(refs, open(refs_file, 'wb'))
    inferencer, dataset = tool.load_inferencer(
        CONFIG, str(workspace / 'rrsis.pth'), data_root=str(root),
        device='cpu', synthetic_root=synthetic_root)
    result = tool.probe_model(inferencer, dataset, max_samples=5)
    assert result['samples'] == 5 and result['images'] == 2
    assert not result['expression_types']['available']
    assert result['scores']['model']['by_type'] is None
    probes = result['seg']['linear_probe']
    assert 'no colour' in probes['colour']['unavailable']
    assert probes['category']['seg_state']['test_samples'] == 1
    one_image = tool.probe_model(inferencer, dataset, max_samples=1)
    assert 'one image' in one_image['seg']['linear_probe']['category'][
        'unavailable']
    # the swap partner of the one sample is outside the first N samples
    assert one_image['swap']['samples'] == 1


def test_usage_errors(tool):
    with pytest.raises(SystemExit) as exit_info:
        tool.parse_args(['c', 'k', '--max-samples', '0'])
    assert exit_info.value.code == 2


@pytest.mark.slow
def test_benchmark_learning_reports_the_probes(tmp_path):
    from tests.test_tools.test_misc_tools import run
    work = tmp_path / 'bench'
    loaders = [f'{split}_dataloader.{key}'
               for split in ('train', 'val', 'test')
               for key in ('num_workers=0', 'persistent_workers=False')]
    run(['tools/analysis/benchmark_learning.py', '--work-dir', str(work),
         '--max-iters', '5', '--val-interval', '5', '--images', '12',
         '--size', '192', '--cfg-options'] + loaders)
    summary = json.load(open(work / 'summary.json'))
    assert set(summary['baselines']) == {'all_zero', 'whole_image',
                                         'all_objects'}
    probe = summary['refer_probe']
    assert summary['baselines']['all_objects'] == probe['scores'][
        'all_objects']['overall']
    assert probe['expression_types']['available']
    assert probe['scores']['model']['overall']['mIoU'] == pytest.approx(
        summary['test']['rrsis/mIoU'], abs=1e-9)
    assert probe['swap']['samples'] > 0
    assert (work / 'curve.png').exists()
