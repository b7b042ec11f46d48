"""geopixel.checkpoint.export and tools/model_converters/export_official.py:
a model written as a released GeoPixel-7B folder (LoRA merged, released
key names, shards, config and tokenizer) reads back to the same model, and
its keys are those of the full-size release."""
import importlib.util
import json
import os
import os.path as osp
import re

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from safetensors import safe_open
from safetensors.torch import load_file

from geopixel.checkpoint import (CheckpointError, load_official_checkpoint,
                                 read_state_dict)
from geopixel.checkpoint import export as export_module
from geopixel.checkpoint.export import (ExportError, export_official,
                                        official_key_name, official_tensors,
                                        parse_size)
from geopixel.checkpoint.official import PREFIX_TABLE, UNUSED_PATTERNS
from geopixel.testing import (demo_batch, get_config, official_tiny_model,
                              tiny_model)

pytest.importorskip('sam2')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
RRSIS_CONFIG = osp.join(REPO, 'geopixel/configs/geopixel/rrsis_tiny.py')
TOOL = osp.join(REPO, 'tools', 'model_converters', 'export_official.py')
MANIFEST = osp.join('manifests', 'geopixel7b_hieraL_state_dict_shapes.json')
JSON_FILES = ('config.json', 'generation_config.json', 'added_tokens.json',
              'special_tokens_map.json', 'tokenizer_config.json')
# r != alpha / 2 (scaling 8): a merge with the recipe's fixed 2.0 is wrong
LORA_4_32 = dict(r=4, lora_alpha=32, lora_dropout=0.0)


def template(key: str) -> str:
    """A key with its layer / block indices normalised."""
    return re.sub(r'\.\d+(?=\.|$)', '.#', key)


def forward(model, batch):
    with torch.no_grad():
        out = model(**batch, mode='tensor')
    return out['logits'], out['masks']


def assert_same_outputs(a, b, **tol):
    torch.testing.assert_close(a[0], b[0], **tol)
    assert len(a[1]) == len(b[1]) and sum(m.shape[0] for m in a[1]) > 0
    for x, y in zip(a[1], b[1]):
        torch.testing.assert_close(x, y, **tol)


@pytest.fixture(scope='module')
def official(parity_dir):
    """Our model holding the official tiny checkpoint."""
    return official_tiny_model(parity_dir).eval()


@pytest.fixture(scope='module')
def exported(official, parity_dir, tmp_path_factory):
    """The official tiny model exported with the unused-module weights
    from the fixture, in 5 MB shards. ``official_tiny_model`` reads
    ``<dir>/checkpoint``, so the export goes there."""
    root = tmp_path_factory.mktemp('exported')
    report = export_official(
        official, str(root / 'checkpoint'), shard_size='5MB',
        unused_from=[osp.join(parity_dir, 'checkpoint')])
    return root, report


@pytest.fixture(scope='module')
def parity_batch(official, parity_dir, tmp_path_factory):
    """One fixed sample (the inference fixture's image, question and answer
    with two [SEG]) as the model's input."""
    from geopixel.datasets import (FormatChat, GeoPixelDDataset,
                                   LoadImageRGB, PackGeoPixelInputs,
                                   TileImage)
    from geopixel.models.tilers import AdaptiveHDTiler
    with open(osp.join(parity_dir, 'inference.json')) as f:
        meta = json.load(f)
    from geopixel.utils import encode_rle
    mask = np.zeros((256, 512), dtype=np.uint8)  # never loaded here
    record = dict(
        id=0,
        conversations=[{'from': 'human', 'value': meta['query']},
                       {'from': 'gpt', 'value': meta['response']}],
        image=osp.join(parity_dir, 'images', 'infer_512x256.png'),
        segmentation=[encode_rle(mask)] * 2)
    ann = tmp_path_factory.mktemp('sample') / 'sample.json'
    ann.write_text(json.dumps([record]))
    dataset = GeoPixelDDataset(
        ann_file=str(ann),
        pipeline=[
            dict(type=LoadImageRGB),
            dict(type=TileImage,
                 tiler=dict(type=AdaptiveHDTiler, hd_num=1, max_tiles=None)),
            dict(type=FormatChat, tokenizer=official.tokenizer),
            dict(type=PackGeoPixelInputs)
        ])
    return official.data_preprocessor(pseudo_collate([dataset[0]]), False)


# -- names ----------------------------------------------------------------
def test_key_names_invert_the_loader_table():
    """Every table row, a peft wrapper and nested CLIP map back; a key the
    release has no name for gives None."""
    for released, ours in PREFIX_TABLE:
        assert official_key_name(ours + 'x.weight') == released + 'x.weight'
    assert official_key_name(
        'llm.llm.model.layers.3.attention.wqkv.base_layer.Plora_A.weight'
    ) == 'model.layers.3.attention.wqkv.Plora_A.weight'
    assert official_key_name(
        'vision_encoder.vit.vision_model.encoder.layers.0.mlp.fc1.weight'
    ) == 'vit.vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight'
    assert official_key_name('mask_decoder.locator_query.weight') is None


def test_shard_sizes_parse():
    assert parse_size('5GB') == 5 * 10**9
    assert parse_size('500MiB') == 500 * 2**20
    assert parse_size(1234) == 1234
    for bad in ('5 parsecs', '-1', '0', 'GB'):
        with pytest.raises(ExportError, match='shard size'):
            parse_size(bad)


def test_a_tokenizer_folder_without_config_gets_the_official_fields(
        parity_dir, tmp_path):
    """``added_tokens.json`` and ``special_tokens_map.json`` come from the
    tokenizer as the model uses it; a missing ``tokenizer_config.json`` is
    written with the official fields; the folder reads back the same."""
    import shutil

    from geopixel.checkpoint.export import write_tokenizer
    from geopixel.tokenizers import InternLM2Tokenizer
    source = tmp_path / 'source'
    source.mkdir()
    shutil.copy(osp.join(parity_dir, 'checkpoint', 'tokenizer.model'),
                source)
    tokenizer = InternLM2Tokenizer.from_pretrained(str(source))  # + 3 added
    out = tmp_path / 'out'
    out.mkdir()
    write_tokenizer(tokenizer, str(out))
    with open(out / 'added_tokens.json') as f:
        assert json.load(f) == {'[SEG]': 1000, '<p>': 1001, '</p>': 1002}
    with open(out / 'special_tokens_map.json') as f:
        assert json.load(f)['pad_token'] == '<unk>'
    with open(osp.join(parity_dir, 'checkpoint', 'tokenizer_config.json')) \
            as f:
        official_fields = set(json.load(f))
    with open(out / 'tokenizer_config.json') as f:
        assert set(json.load(f)) == official_fields
    back = InternLM2Tokenizer.from_pretrained(str(out), extra_tokens=())
    assert back.encode('<p> a court </p> [SEG]') == tokenizer.encode(
        '<p> a court </p> [SEG]')


# -- (a) the official tiny checkpoint, exported and read back -------------
@pytest.mark.slow
def test_export_reproduces_the_official_checkpoint(exported, parity_dir):
    """Same 614 keys, shapes, dtypes and values as the fixture's
    model.safetensors (which our loader read unchanged: it has no LoRA to
    merge), in three shards with an index; the JSON files equal the
    official ones field for field."""
    root, report = exported
    folder = root / 'checkpoint'
    ref = load_file(osp.join(parity_dir, 'checkpoint', 'model.safetensors'))
    out = read_state_dict(str(folder))
    assert sorted(out) == sorted(ref) and len(out) == 614
    for key, value in ref.items():
        assert out[key].dtype == value.dtype, key
        assert torch.equal(out[key], value), key
    with open(folder / 'model.safetensors.index.json') as f:
        index = json.load(f)
    shards = sorted(set(index['weight_map'].values()))
    assert shards == report['shards'] == [
        f'model-0000{i}-of-00003.safetensors' for i in (1, 2, 3)]
    assert sorted(index['weight_map']) == sorted(ref)
    assert index['metadata']['total_size'] == sum(
        v.nbytes for v in ref.values()) == report['total_size']
    for shard in shards:  # transformers' from_pretrained needs the format
        with safe_open(str(folder / shard), framework='pt') as f:
            assert f.metadata() == {'format': 'pt'}
        # a shard holds at most 5 MB of tensors
        assert sum(ref[k].nbytes for k, s in index['weight_map'].items()
                   if s == shard) <= 5 * 10**6
    for name in JSON_FILES:
        with open(osp.join(parity_dir, 'checkpoint', name)) as f:
            expected = json.load(f)
        with open(folder / name) as f:
            assert json.load(f) == expected, name
    with open(folder / 'tokenizer.model', 'rb') as f, open(
            osp.join(parity_dir, 'checkpoint', 'tokenizer.model'),
            'rb') as g:
        assert f.read() == g.read()
    assert report['merged'] == [] and report['left_out'] == []
    assert report['unused'] == {osp.join(parity_dir, 'checkpoint'): 217}
    assert not [p for p in os.listdir(root) if p.startswith('.')]


@pytest.mark.slow
def test_exported_folder_loads_back_to_identical_outputs(
        exported, official, parity_batch):
    """A fresh model built from the export alone (its config.json sizes the
    LLM, its tokenizer files give the ids, load_official_checkpoint reads
    the shards) has the same weights and the same logits and masks."""
    root, _ = exported
    reloaded = official_tiny_model(str(root)).eval()
    assert reloaded.load_report['missing'] == []
    assert reloaded.load_report['unknown'] == []
    assert len(reloaded.load_report['dropped']) == 217  # the unused weights
    assert reloaded.tokenizer.added_tokens_encoder == \
        official.tokenizer.added_tokens_encoder
    theirs = reloaded.state_dict()
    for key, value in official.state_dict().items():
        assert torch.equal(theirs[key], value), key
    assert_same_outputs(forward(reloaded, parity_batch),
                        forward(official, parity_batch), rtol=0, atol=0)


@pytest.mark.slow
def test_without_unused_sources_only_the_unused_weights_are_missing(
        official, parity_dir, tmp_path):
    report = export_official(official, str(tmp_path / 'out'))
    ref = load_file(osp.join(parity_dir, 'checkpoint', 'model.safetensors'))
    out = read_state_dict(str(tmp_path / 'out'))
    missing = sorted(set(ref) - set(out))
    assert set(out) <= set(ref) and len(missing) == 217
    assert all(any(p.search(k) for p in UNUSED_PATTERNS) for k in missing)
    assert report['unused_missing'] and report['unused'] == {}
    assert report['shards'] == ['model-00001-of-00001.safetensors']
    # and they still load (the loader drops nothing it needs)
    load_official_checkpoint(official, str(tmp_path / 'out'))


def test_unused_weights_of_another_model_size_are_refused(tmp_path):
    """IXC adapters whose widths do not match the projections (as from a
    7B folder for a tiny model) are an error naming the module."""
    from safetensors.torch import save_file
    from geopixel.checkpoint.export import ExportTensor, unused_tensors
    w = 'model.layers.0.attention.wqkv'
    exported = {
        f'{w}.weight': ExportTensor((12, 8), torch.float32, None, 'x'),
        f'{w}.Plora_A.weight': ExportTensor((4, 8), torch.float32, None,
                                            'x'),
    }
    source = {f'{w}.lora_{k}_{ab}.weight': torch.zeros(
        (2, 4096) if ab == 'A' else (12, 2))
        for k in ('sft', 'dpo', 'web') for ab in 'AB'}
    save_file(source, str(tmp_path / 'model.safetensors'))
    with pytest.raises(ExportError, match=r'lora_sft: A \(2, 4096\)'):
        unused_tensors([str(tmp_path / 'model.safetensors')], exported)
    source = {k: v for k, v in source.items() if 'web' not in k}
    source = {k: torch.zeros(2, 8) if k.endswith('_A.weight') else v
              for k, v in source.items()}
    save_file(source, str(tmp_path / 'model.safetensors'))
    with pytest.raises(ExportError, match='lora_web_A/B missing'):
        unused_tensors([str(tmp_path / 'model.safetensors')], exported)


def test_sam2_checkpoint_memory_modules_get_their_released_names(
        tmp_path):
    """A SAM2 ``.pt``: its video-memory keys are nested under
    ``model.visual_model.`` with ``gamma`` renamed, its image encoder (a
    used weight) is not taken, and a SAM2 of another width is refused."""
    from geopixel.checkpoint.export import unused_tensors
    state = {
        'image_encoder.trunk.pos_embed': torch.zeros(1, 8, 7, 7),
        'memory_encoder.fuser.layers.0.gamma': torch.ones(32),
        'memory_attention.norm.weight': torch.ones(32),
        'no_obj_ptr': torch.zeros(1, 32),
    }
    torch.save({'model': state}, tmp_path / 'sam2.pt')
    found = unused_tensors([str(tmp_path / 'sam2.pt')], {}, sam2_dim=32)
    assert sorted(found) == [
        'model.visual_model.memory_attention.norm.weight',
        'model.visual_model.memory_encoder.fuser.layers.0.weight',
        'model.visual_model.no_obj_ptr'
    ]
    assert torch.equal(found['model.visual_model.memory_encoder.fuser.'
                             'layers.0.weight'].make(), torch.ones(32))
    with pytest.raises(ExportError, match='no_obj_ptr has width 32 but the '
                       "model's SAM2 has 256"):
        unused_tensors([str(tmp_path / 'sam2.pt')], {}, sam2_dim=256)


# -- (b) un-merged LoRA, r=4 / alpha=32 -----------------------------------
@pytest.fixture(scope='module')
def lora_setup(synthetic_root):
    """The tiny model without the locator (the release has no place for
    it), LoRA r=4 / alpha=32 with non-zero B, and a training batch."""
    cfg = get_config(RRSIS_CONFIG, synthetic_root)
    cfg.model.mask_decoder.locator = False
    cfg.model.llm.lora = dict(LORA_4_32)
    model = tiny_model(cfg).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if '.lora_B.' in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
    batch = demo_batch(cfg, model, 'train', 1)
    return cfg, model, batch


@pytest.mark.slow
def test_lora_model_exports_merged_and_reloads_to_its_forward(
        lora_setup, tmp_path):
    cfg, model, batch = lora_setup
    before = forward(model, batch)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    report = export_official(model, str(tmp_path / 'out'), dtype=None)
    assert len(report['merged']) == 2 * 5  # 2 layers x wqkv, wo, w1, w2, w3
    # the training-only [SEG] words head is left out, and said so
    assert report['left_out'] and all(
        k.startswith('seg_words_head.') for k in report['left_out'])
    out = read_state_dict(str(tmp_path / 'out'))
    assert not [k for k in out if '.lora_A.' in k or '.lora_B.' in k]
    # W + B @ A * alpha / r, computed here independently of lora.py
    wqkv = model.llm.llm.model.layers[1].attention.wqkv
    expected = wqkv.base_layer.weight + (
        wqkv.lora_B['default'].weight @ wqkv.lora_A['default'].weight) * 8.0
    torch.testing.assert_close(
        out['model.layers.1.attention.wqkv.weight'], expected, rtol=1e-6,
        atol=1e-6)
    assert not torch.allclose(expected, wqkv.base_layer.weight, atol=1e-3)
    # a fresh LoRA-free model reads the folder (tokenizer included) and
    # computes what the un-merged model computed
    plain = dict(cfg.model)
    plain['llm'] = dict(cfg.model.llm, type='FrozenLLMAdapter', lora=None,
                        train_embeddings='none')
    plain['seg_words_head'] = None
    plain['tokenizer'] = dict(cfg.model.tokenizer, path=str(tmp_path / 'out'))
    reloaded = tiny_model(plain, seed=1,
                          checkpoint=str(tmp_path / 'out')).eval()
    assert_same_outputs(forward(reloaded, batch), before, rtol=1e-4,
                        atol=1e-5)
    # the model itself was not changed by the export
    assert model.llm.lora_config == LORA_4_32 | dict(
        target_modules=list(model.llm.lora_targets))
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights[key]), key


@pytest.mark.slow
def test_bf16_export_and_a_disagreeing_lora_config_is_refused(
        lora_setup, tmp_path):
    """``dtype`` casts every weight; a recorded LoRA configuration that is
    not what the model applies is refused before anything is written."""
    cfg, model, _ = lora_setup
    report = export_official(model, str(tmp_path / 'bf16'),
                             dtype=torch.bfloat16)
    assert report['dtype'] == 'bfloat16'
    with open(tmp_path / 'bf16' / 'config.json') as f:
        assert json.load(f)['torch_dtype'] == 'bfloat16'
    out = read_state_dict(str(tmp_path / 'bf16'))
    assert {v.dtype for v in out.values() if v.is_floating_point()} == {
        torch.bfloat16}
    recorded = model.llm.lora_config
    model.llm.lora_config = dict(recorded, lora_alpha=16)
    try:
        with pytest.raises(ExportError, match='gives scaling 4.0 but the '
                           'model applies 8.0'):
            export_official(model, str(tmp_path / 'wrong'))
    finally:
        model.llm.lora_config = recorded
    assert not osp.exists(tmp_path / 'wrong')


@pytest.mark.slow
def test_the_locator_has_no_released_name_and_is_refused(synthetic_root):
    cfg = get_config(RRSIS_CONFIG, synthetic_root)
    assert cfg.model.mask_decoder.locator  # the tiny configs' default
    model = tiny_model(cfg)
    with pytest.raises(ExportError, match=r'no name in the released '
                       r'GeoPixel format.*mask_decoder\.locator_'):
        official_tensors(model)


# -- (c) the full-size key manifest ----------------------------------------
@pytest.mark.slow
def test_full_size_export_names_are_the_release_manifest(parity_dir):
    """Our GeoPixel-7B parts (hiera-L, LoRA on; meta device) export under
    exactly the manifest's names and shapes; the manifest keys they lack
    are the unused modules only, which ``unused_from`` supplies."""
    from geopixel.models.decoders import SAM2MaskDecoder
    from geopixel.models.grounding_encoders import SAM2GroundingEncoder
    from geopixel.models.llms import PartialLoRAAdapter
    from geopixel.models.projectors import SegProjector
    from geopixel.models.vision_encoders import CLIPVisionEncoder
    with open(osp.join(parity_dir, MANIFEST)) as f:
        manifest = {k: tuple(v) for k, v in json.load(f).items()}
    with torch.device('meta'):
        parts = torch.nn.ModuleDict(dict(
            vision_encoder=CLIPVisionEncoder(out_channels=4096),
            llm=PartialLoRAAdapter(vocab_size=92547),
            mask_decoder=SAM2MaskDecoder(embed_dim=256),
            seg_projector=SegProjector(4096, 256)))
    parts['grounding_encoder'] = SAM2GroundingEncoder('hiera_l')
    tensors, report = official_tensors(parts)
    assert len(report['merged']) == 32 * 5
    assert {k: v.shape for k, v in tensors.items()} == {
        k: s for k, s in manifest.items() if k in tensors}
    missing = set(manifest) - set(tensors)
    assert len(missing) == 1117
    assert all(any(p.search(k) for p in UNUSED_PATTERNS) for k in missing)


@pytest.mark.slow
def test_tiny_export_with_unused_weights_has_the_manifest_key_patterns(
        exported, parity_dir):
    """Layer indices normalised, the exported key patterns and the 7B
    manifest's are the same set (both directions)."""
    root, _ = exported
    with open(osp.join(parity_dir, MANIFEST)) as f:
        manifest = json.load(f)
    with open(root / 'checkpoint' / 'model.safetensors.index.json') as f:
        keys = json.load(f)['weight_map']
    assert {template(k) for k in keys} == {template(k) for k in manifest}


# -- (d) refusals and interrupted exports ----------------------------------
@pytest.mark.slow
def test_existing_folders_are_refused_unless_overwrite(official, tmp_path):
    target = tmp_path / 'out'
    target.mkdir()
    (target / 'notes.txt').write_text('mine')
    with pytest.raises(ExportError, match='exists and is not empty'):
        export_official(official, str(target))
    assert os.listdir(target) == ['notes.txt']
    (tmp_path / 'file').write_text('x')
    with pytest.raises(ExportError, match='is not a folder'):
        export_official(official, str(tmp_path / 'file'))
    export_official(official, str(target), overwrite=True)
    assert 'notes.txt' not in os.listdir(target)
    assert 'model.safetensors.index.json' in os.listdir(target)
    empty = tmp_path / 'empty'
    empty.mkdir()
    export_official(official, str(empty))  # an empty folder is fine
    assert sorted(p for p in os.listdir(tmp_path) if p.startswith('.')) == []


@pytest.mark.slow
def test_an_interrupted_export_leaves_no_folder(official, tmp_path,
                                                monkeypatch):
    """The writer fails on the second shard: no out_dir, no leftovers; an
    existing folder being overwritten keeps its old content."""
    real_save = export_module.save_file
    calls = []

    def failing_save(tensors, path, metadata=None):
        calls.append(path)
        if len(calls) == 2:
            raise OSError('No space left on device')
        real_save(tensors, path, metadata=metadata)

    monkeypatch.setattr(export_module, 'save_file', failing_save)
    with pytest.raises(OSError, match='No space left'):
        export_official(official, str(tmp_path / 'out'), shard_size='5MB')
    assert len(calls) == 2
    assert os.listdir(tmp_path) == []
    old = tmp_path / 'old'
    old.mkdir()
    (old / 'config.json').write_text('{"old": true}')
    calls.clear()
    with pytest.raises(OSError, match='No space left'):
        export_official(official, str(old), shard_size='5MB',
                        overwrite=True)
    assert os.listdir(old) == ['config.json']
    assert sorted(os.listdir(tmp_path)) == ['old']


def test_non_finite_weights_are_refused(tmp_path):
    """A NaN weight stops the export, naming the tensor, and nothing is
    written."""
    from geopixel.checkpoint.export import ExportTensor, _write_shards
    bad = torch.tensor([1.0, float('nan')])
    tensors = {'model.norm.weight': ExportTensor((2, ), torch.float32,
                                                 lambda: bad, 'x')}
    with pytest.raises(CheckpointError, match='model.norm.weight'):
        _write_shards(tensors, [['model.norm.weight']], None, str(tmp_path))
    assert os.listdir(tmp_path) == []


# -- the tool ----------------------------------------------------------------
def load_tool():
    spec = importlib.util.spec_from_file_location('export_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_tool_exports_a_trained_checkpoint(synthetic_root, tmp_path,
                                           monkeypatch, capsys):
    """CONFIG CHECKPOINT OUT_DIR on the tiny config (locator off through
    --cfg-options): the folder loads back into a LoRA-free model with the
    merged weights; a second run needs --overwrite."""
    (tmp_path / 'data').mkdir()
    os.symlink(synthetic_root, tmp_path / 'data' / 'synthetic')
    monkeypatch.chdir(tmp_path)
    cfg = get_config(RRSIS_CONFIG, synthetic_root)
    cfg.model.mask_decoder.locator = False
    model = tiny_model(cfg)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if '.lora_B.' in name:
                param.normal_(std=0.05)
    torch.save(model.state_dict(), tmp_path / 'trained.pth')
    tool = load_tool()
    argv = [RRSIS_CONFIG, str(tmp_path / 'trained.pth'), 'exported',
            '--shard-size', '2MB', '--cfg-options',
            'model.mask_decoder.locator=False']
    assert tool.main(argv) == 0
    printed = capsys.readouterr().out
    assert 'LoRA merged into 10 module(s)' in printed
    assert 'left out (training only)' in printed
    assert 'no unused-module weights' in printed
    out = read_state_dict(str(tmp_path / 'exported'))
    wo = model.llm.llm.model.layers[0].attention.wo
    scaling = wo.scaling['default']
    torch.testing.assert_close(
        out['model.layers.0.attention.wo.weight'],
        wo.base_layer.weight + wo.lora_B['default'].weight
        @ wo.lora_A['default'].weight * scaling, rtol=1e-6, atol=1e-6)
    assert len(os.listdir(tmp_path / 'exported')) > 7
    assert tool.main(argv) == 1
    assert 'exists and is not empty' in capsys.readouterr().err
    assert tool.main(argv + ['--overwrite', '--dtype', 'bfloat16']) == 0
    with open(tmp_path / 'exported' / 'config.json') as f:
        assert json.load(f)['torch_dtype'] == 'bfloat16'
