"""The adaptive HD divider against the official implementation's outputs."""
import hashlib
import json
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image

from geopixel.models.data_preprocessors import normalize_canvas
from geopixel.models.tilers import (AdaptiveHDTiler, BaseTiler, global_view,
                                    split_tiles)


def sha256_f32(tensor) -> str:
    array = tensor.numpy() if hasattr(tensor, 'numpy') else tensor
    return hashlib.sha256(
        np.ascontiguousarray(array, dtype='<f4').tobytes()).hexdigest()


def load_cases(parity_dir):
    with open(osp.join(parity_dir, 'hd_transform', 'hd_cases.json')) as f:
        return json.load(f)


def _case_id(case):
    name = osp.basename(case['input_png'])
    return f"{case['kind']}-{name}-hd{case['hd_num']}"


@pytest.fixture(scope='module')
def hd_cases(parity_dir):
    return load_cases(parity_dir)


def test_all_sixteen_fixture_cases_reproduced(parity_dir, hd_cases):
    assert len(hd_cases) == 16
    failures = []
    for case in hd_cases:
        mode = 'train' if case['kind'] == 'training' else 'inference'
        tiler = AdaptiveHDTiler(
            hd_num=case['hd_num'], mode=mode, max_tiles=None)
        image = Image.open(osp.join(parity_dir,
                                    case['input_png'])).convert('RGB')
        out = tiler(image)
        expected = np.asarray(
            Image.open(osp.join(parity_dir,
                                case['output_png'])).convert('RGB'))
        resize = next(o for o in case['observed_ops'] if o['op'] == 'resize')
        pad = next(o for o in case['observed_ops'] if o['op'] == 'pad')
        normalized = normalize_canvas(out.image)
        checks = {
            'pixels': np.array_equal(out.image, expected),
            'uint8 sha': hashlib.sha256(out.image.tobytes()).hexdigest() ==
            case['output_uint8_sha256'],
            'normalized sha': sha256_f32(normalized) ==
            case['normalized_tensor']['sha256'],
            'resize': list(out.meta['landscape_resize_hw']) ==
            resize['size_hw'],
            'pad': list(out.meta['landscape_padding_ltrb']) ==
            pad['padding_ltrb'],
            'size': [out.image.shape[1], out.image.shape[0]] ==
            case['output_size_wh'],
            'grid': list(out.grid) == case['grid_rows_cols'],
            'tokens': out.num_tokens == case['num_image_tokens'],
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            failures.append((_case_id(case), bad))
        # the documented tolerance, checked directly as well
        assert float(normalized.mean()) == pytest.approx(
            case['normalized_tensor']['mean'], abs=1e-5)
    assert not failures, failures


def test_global_view_and_tiles_match_clip_batch(parity_dir):
    with open(osp.join(parity_dir, 'vit_portrait.json')) as f:
        ref = json.load(f)
    tiler = AdaptiveHDTiler(hd_num=ref['hd_num'], max_tiles=None)
    out = tiler(Image.open(osp.join(parity_dir, ref['input_png'])))
    canvas = normalize_canvas(out.image)
    assert sha256_f32(canvas) == ref['vit_input']['sha256']
    crops = torch.cat([global_view(canvas, 560)[None],
                       split_tiles(canvas, out.grid, 560)])
    assert list(crops.shape) == ref['clip_batch_shape']
    for crop, expected in zip(crops, ref['clip_batch_crops']):
        assert sha256_f32(crop) == expected['sha256']
    assert out.num_tokens == ref['output_len'][0]


@pytest.mark.parametrize('hd_num,tokens', [(1, 841), (4, 2061), (9, 4081),
                                           (16, 6901), (25, 10521)])
@pytest.mark.parametrize('mode', ['train', 'inference'])
def test_token_table_for_square_images(hd_num, tokens, mode):
    side = 3000  # large enough that training reaches the full grid
    tiler = AdaptiveHDTiler(hd_num=hd_num, mode=mode)
    plan = tiler.plan(side, side)
    grid = int(hd_num**0.5)
    assert plan['grid'] == (grid, grid)
    assert tiler.tokens_for_size(side, side) == tokens
    out = tiler(np.zeros((64, 64, 3), np.uint8))
    assert out.num_tokens == tiler.num_tokens(*out.grid)


def test_800px_tile_training_caps_at_three_columns():
    # ceil(800 * 1.5 / 560) = 3: hd >= 9 gives 3x3, hd 4 gives 2x2
    assert AdaptiveHDTiler(16, mode='train').plan(800, 800)['grid'] == (3, 3)
    assert AdaptiveHDTiler(4, mode='train').plan(800, 800)['grid'] == (2, 2)
    assert AdaptiveHDTiler(16, mode='inference').plan(800, 800)['grid'] == (4,
                                                                           4)


def test_official_inference_can_exceed_hd_num_and_bounded_default_does_not():
    official = AdaptiveHDTiler(9, mode='inference', max_tiles=None)
    bounded = AdaptiveHDTiler(9, mode='inference')
    for hd in (9, 16, 25):
        grid = AdaptiveHDTiler(hd, max_tiles=None).plan(3840, 2160)['grid']
        assert grid[0] * grid[1] == 24  # the reference rule ignores hd_num
    assert official.plan(4000, 3000)['grid'] == (6, 7)  # 42 tiles
    rows, cols = bounded.plan(4000, 3000)['grid']
    assert rows * cols <= 9
    capped = AdaptiveHDTiler(9, max_tiles=16).plan(4000, 3000)['grid']
    assert capped[0] * capped[1] <= 16


def test_ixc_inference_rule():
    tiler = AdaptiveHDTiler(9, mode='inference', inference_rule='ixc')
    # min(ceil(512 / 560), s) = 1 column for a 512x256 image
    assert tiler.plan(512, 256)['grid'] == (1, 1)


def test_portrait_padding_lands_on_the_right():
    tiler = AdaptiveHDTiler(4, mode='inference', max_tiles=None)
    out = tiler(np.full((700, 300, 3), 10, np.uint8))
    assert out.padding == (0, 0, 81, 0)
    assert (out.image[:, -81:] == 255).all()
    assert (out.image[:, :479] == 10).all()


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError):
        AdaptiveHDTiler(0)
    with pytest.raises(ValueError):
        AdaptiveHDTiler(9, mode='eval')
    with pytest.raises(ValueError):
        AdaptiveHDTiler(9, inference_rule='other')
    with pytest.raises(ValueError):
        AdaptiveHDTiler(9)(np.zeros((10, 10), np.float32))


# -- the BaseTiler contract ---------------------------------------------------
class StripTiler(BaseTiler):
    """A minimal tiler: one row of ``cols`` tiles, nothing else inherited."""

    def __init__(self, cols=2, tile_size=56):
        super().__init__(tile_size)
        self.cols = cols

    def plan(self, width, height):
        size = (self.cols * self.tile_size, self.tile_size)
        return dict(grid=(1, self.cols), resized_size=size,
                    padding=(0, 0, 0, 0))

    def __call__(self, image):
        plan = self.plan(*image.shape[1::-1])
        canvas = np.zeros((self.tile_size, self.cols * self.tile_size, 3),
                          np.uint8)
        return self.tiled_image(canvas, plan, image.shape[1::-1])


def test_token_count_follows_the_tile_geometry_alone():
    """2 tokens per side (56 px): the global view and two tiles of 2 x 2,
    a newline after each of the 2 + 2 token rows, one separator."""
    tiler = StripTiler(cols=2, tile_size=56)
    assert tiler.tokens_per_side == 2
    assert tiler.num_tokens(1, 2) == 3 * 4 + 4 + 1
    out = tiler(np.zeros((10, 30, 3), np.uint8))
    assert out.num_tokens == 17 and out.grid == (1, 2)
    assert out.original_size == (30, 10)
    assert tiler.tokens_for_size(30, 10) == 17
    # the adaptive tiler counts with the same rule
    assert AdaptiveHDTiler(tile_size=56).num_tokens(1, 2) == 17


def test_base_tiler_rejects_what_the_count_cannot_describe():
    with pytest.raises(ValueError, match='multiple of 28'):
        StripTiler(tile_size=50)
    with pytest.raises(ValueError, match='multiple of 28'):
        AdaptiveHDTiler(tile_size=0)
    tiler = StripTiler(cols=2, tile_size=56)
    with pytest.raises(ValueError, match='not the 1 x 3 grid'):
        tiler.tiled_image(np.zeros((56, 112, 3), np.uint8),
                          dict(grid=(1, 3), resized_size=(168, 56),
                               padding=(0, 0, 0, 0)), (168, 56))


@pytest.mark.parametrize('missing', ['plan', '__call__'])
def test_base_tiler_enforces_its_abstract_methods(missing):
    methods = {'plan': StripTiler.plan, '__call__': StripTiler.__call__}
    del methods[missing]
    partial = type('Partial', (BaseTiler, ), methods)
    with pytest.raises(TypeError, match=missing):
        partial()


def test_example_project_tiler_derives_from_base_tiler_only(monkeypatch):
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    monkeypatch.syspath_prepend(osp.join(repo, 'projects', 'example_project'))
    from gp_example import FixedGridTiler
    assert FixedGridTiler.__bases__ == (BaseTiler, )
    tiler = FixedGridTiler(rows=1, cols=2)
    for unused in ('hd_num', 'mode', 'inference_rule'):
        assert not hasattr(tiler, unused)
    out = tiler(np.zeros((300, 200, 3), np.uint8))
    assert out.num_tokens == tiler.num_tokens(1, 2) == 3 * 400 + 2 * 20 + 1
    with pytest.raises(ValueError, match='rows and cols'):
        FixedGridTiler(rows=0)
