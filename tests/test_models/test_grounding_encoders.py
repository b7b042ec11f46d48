"""SAM2 and SAM grounding encoders at tiny size: feature shapes, their own
preprocessing, frozen by default, loading their released weight layout."""
import pytest
import torch

from geopixel.testing import tiny_component_cfg, tiny_sam_cfgs

pytest.importorskip('sam2')

KINDS = ('sam2', 'sam')
# the normalisation SAM and SAM2 were trained with (ImageNet statistics)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def build(kind, weights=None, **changes):
    """A tiny encoder with its default freezing (the tiny model config
    unfreezes its SAM2 to train from random init); ``weights`` is the
    file or folder of released weights to load."""
    from geopixel.registry import GROUNDING_ENCODERS
    if kind == 'sam2':
        cfg = tiny_component_cfg('grounding_encoder')
        cfg.pop('frozen')
    else:
        cfg = tiny_sam_cfgs()[0]
    if weights is not None:
        changes['checkpoint'] = weights
    cfg.update(changes)
    torch.manual_seed(0)
    return GROUNDING_ENCODERS.build(cfg)


@pytest.fixture(scope='module', params=KINDS)
def kind_and_encoder(request):
    return request.param, build(request.param)


def uniform_image(height, width, rgb=(255, 0, 128)):
    return torch.tensor(rgb, dtype=torch.uint8).view(3, 1, 1).expand(
        3, height, width).clone()


def normalised(rgb):
    return torch.tensor([(v / 255 - m) / s for v, m, s in zip(rgb, MEAN,
                                                              STD)])


def test_feature_shapes(kind_and_encoder):
    """SAM2: the stride-16 embedding plus stride-4 and stride-8 levels for
    the decoder; SAM: the embedding only. Channels = ``hidden_dim``."""
    kind, encoder = kind_and_encoder
    images = [uniform_image(300, 200), uniform_image(180, 260)]
    assert encoder.original_sizes(images) == [(300, 200), (180, 260)]
    pixels = encoder.preprocess(images)
    size, dim = encoder.input_size, encoder.hidden_dim
    assert pixels.shape == (2, 3, size, size)
    with torch.no_grad():
        features = encoder(pixels)
    assert features['image_embed'].shape == (2, dim, size // 16, size // 16)
    high_res = [tuple(h.shape) for h in features['high_res']]
    if kind == 'sam2':
        assert high_res == [(2, dim, size // 4, size // 4),
                            (2, dim, size // 8, size // 8)]
    else:
        assert high_res == []


def test_frozen_by_default(kind_and_encoder):
    _, encoder = kind_and_encoder
    assert not any(p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert not encoder.training
    pixels = encoder.preprocess([uniform_image(64, 64)])
    assert not encoder(pixels)['image_embed'].requires_grad


@pytest.mark.parametrize('kind', KINDS)
def test_unfrozen_encoder_trains(kind):
    encoder = build(kind, frozen=False).train()
    assert encoder.training
    pixels = encoder.preprocess([uniform_image(64, 64)])
    encoder(pixels)['image_embed'].sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in encoder.parameters())


def test_sam2_preprocessing_squashes_to_the_input_size():
    """Aspect not kept (SAM2Transforms): a uniform image stays uniform."""
    encoder = build('sam2')
    pixels = encoder.preprocess([uniform_image(300, 120)])[0]
    expected = normalised((255, 0, 128)).view(3, 1, 1).expand_as(pixels)
    torch.testing.assert_close(pixels, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('height,width', [(200, 100), (100, 200)])
def test_sam_preprocessing_keeps_aspect_and_pads_bottom_right(height,
                                                              width):
    encoder = build('sam')
    size = encoder.input_size
    pixels = encoder.preprocess([uniform_image(height, width)])[0]
    h, w = (size, size // 2) if height > width else (size // 2, size)
    content = normalised((255, 0, 128)).view(3, 1, 1).expand(3, h, w)
    torch.testing.assert_close(pixels[:, :h, :w], content, rtol=1e-5,
                               atol=1e-5)
    padding = torch.ones_like(pixels, dtype=torch.bool)
    padding[:, :h, :w] = False
    assert not pixels[padding].any()


def test_sam2_adds_the_no_memory_embedding_to_the_lowest_level():
    encoder = build('sam2')
    pixels = encoder.preprocess([uniform_image(64, 64)])
    with torch.no_grad():
        encoder.no_mem_embed.zero_()
        plain = encoder(pixels)
        encoder.no_mem_embed.fill_(0.5)
        shifted = encoder(pixels)
    torch.testing.assert_close(shifted['image_embed'],
                               plain['image_embed'] + 0.5)
    for a, b in zip(shifted['high_res'], plain['high_res']):
        assert torch.equal(a, b)


def test_sam2_loads_the_encoder_part_of_a_sam2_checkpoint(tmp_path):
    source = build('sam2')
    with torch.no_grad():
        source.no_mem_embed.fill_(0.25)
    state = {k: v for k, v in source.state_dict().items()
             if not k.startswith('pixel_')}
    # a SAM2 .pt holds the decoder and video modules too: left out
    state['sam_mask_decoder.iou_token.weight'] = torch.zeros(1, 4)
    state['memory_encoder.out_proj.weight'] = torch.zeros(2, 2)
    path = tmp_path / 'sam2_tiny.pt'
    torch.save({'model': state}, path)
    loaded = build('sam2', weights=str(path))
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, source.state_dict()[key]), key

    del state['no_mem_embed']
    torch.save({'model': state}, path)
    with pytest.raises(KeyError, match='no_mem_embed'):
        build('sam2', weights=str(path))


def test_sam_loads_the_vision_encoder_of_a_hf_sam_folder(tmp_path):
    from safetensors.torch import save_file
    source = build('sam')
    state = {k: v.contiguous() for k, v in source.state_dict().items()
             if k.startswith('vision_encoder.')}
    state['mask_decoder.iou_token.weight'] = torch.zeros(1, 4)  # ignored
    save_file(state, str(tmp_path / 'model.safetensors'))
    loaded = build('sam', weights=str(tmp_path))
    for key, value in loaded.vision_encoder.state_dict().items():
        assert torch.equal(value, state['vision_encoder.' + key]), key


def test_unknown_variants_name_the_choices():
    with pytest.raises(ValueError, match="unknown SAM variant 'vit_x'"):
        build('sam', variant='vit_x')
    with pytest.raises(FileNotFoundError, match="'hiera_x' not found"):
        build('sam2', variant='hiera_x')


def test_missing_sam2_checkpoint_is_named(tmp_path):
    missing = str(tmp_path / 'sam2_hiera_large.pt')
    with pytest.raises(FileNotFoundError, match='SAM2 checkpoint not found'):
        build('sam2', weights=missing)
