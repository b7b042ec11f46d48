"""CLIPVisionEncoder at the tiny model's size: token count and layout,
widths, the 2x2 merge, freezing."""
import pytest
import torch

from geopixel.models.tilers import AdaptiveHDTiler
from geopixel.testing import tiny_component_cfg


def build(**changes):
    """The tiny config's encoder, projecting to the tiny LLM's width (what
    the composite model fills in)."""
    from geopixel.registry import VISION_ENCODERS
    cfg = tiny_component_cfg('vision_encoder')
    cfg.update(
        out_channels=tiny_component_cfg('llm').llm_config.hidden_size,
        **changes)
    torch.manual_seed(0)
    return VISION_ENCODERS.build(cfg)


@pytest.fixture(scope='module')
def encoder():
    return build().eval()


def canvas(encoder, grid, seed=0):
    rows, cols = grid
    side = encoder.tile_size
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(3, rows * side, cols * side, generator=gen)


def test_widths_follow_the_clip_tower_and_out_channels(encoder):
    clip_width = encoder.vit.config.hidden_size
    width = tiny_component_cfg('llm').llm_config.hidden_size
    assert encoder.hidden_size == width
    assert encoder.merged_channels == 4 * clip_width
    assert encoder.projector[0].in_features == 4 * clip_width
    assert encoder.projector[-1].out_features == width
    assert encoder.glb_GN.shape == (1, 1, 4 * clip_width)
    assert encoder.sub_GN.shape == (1, 1, 1, 4 * clip_width)


def test_tokens_per_image_follow_the_tilers_count(encoder):
    """A batch of images with different grids: one [T_i, C] each, T_i the
    tiler's count for that grid; each image as if encoded alone."""
    tiler = AdaptiveHDTiler(tile_size=encoder.tile_size)
    grids = [(1, 1), (1, 2), (2, 3)]
    canvases = [canvas(encoder, g, seed=i) for i, g in enumerate(grids)]
    with torch.no_grad():
        tokens = encoder(canvases, grids)
        alone = encoder(canvases[1:2], grids[1:2])[0]
    assert [tuple(t.shape) for t in tokens] == [
        (tiler.num_tokens(*g), encoder.hidden_size) for g in grids]
    torch.testing.assert_close(tokens[1], alone, rtol=1e-5, atol=1e-5)


def test_newlines_and_separator_sit_where_the_layout_says(encoder):
    """Global view: ``side`` rows of ``side`` tokens and a newline; one
    separator; tiles: ``rows*side`` rows of ``cols*side`` tokens and a
    newline (``side`` merged tokens per tile side)."""
    rows, cols = 2, 3
    side = encoder.patch_grid // 2
    with torch.no_grad():
        encoder.sub_GN.normal_()
        encoder.glb_GN.normal_()
        tokens = encoder([canvas(encoder, (rows, cols))], [(rows, cols)])[0]
        newline = encoder.projector(encoder.sub_GN.reshape(1, -1))[0]
        separator = encoder.projector(encoder.glb_GN.reshape(1, -1))[0]

    def where(value):
        close = torch.isclose(tokens, value, rtol=1e-5, atol=1e-6)
        return set(torch.nonzero(close.all(-1))[:, 0].tolist())

    global_len = side * (side + 1)
    expected_newlines = {k * (side + 1) + side for k in range(side)}
    expected_newlines |= {
        global_len + 1 + k * (cols * side + 1) + cols * side
        for k in range(rows * side)
    }
    assert where(separator) == {global_len}
    assert where(newline) == expected_newlines
    assert tokens.shape[0] == max(expected_newlines) + 1


def test_merge_concatenates_2x2_neighbourhoods_in_row_order(encoder):
    g, width = encoder.patch_grid, 2
    index = torch.arange(g * g, dtype=torch.float32)
    features = index[None, :, None].expand(1, g * g, width)
    merged = encoder.merge(features)
    assert merged.shape == (1, g // 2, g // 2, 4 * width)
    for i, j in [(0, 0), (0, 1), (g // 2 - 1, g // 2 - 1)]:
        patches = [(2 * i) * g + 2 * j, (2 * i) * g + 2 * j + 1,
                   (2 * i + 1) * g + 2 * j, (2 * i + 1) * g + 2 * j + 1]
        expected = torch.tensor(patches).float().repeat_interleave(width)
        assert torch.equal(merged[0, i, j], expected)


def test_frozen_tower_trains_only_the_projector():
    encoder = build()
    encoder.train()
    assert not encoder.vit.training  # frozen: dropout-free, eval mode
    assert not any(p.requires_grad for p in encoder.vit.parameters())
    assert not encoder.glb_GN.requires_grad
    assert not encoder.sub_GN.requires_grad
    tokens = encoder([canvas(encoder, (1, 1))], [(1, 1)])[0]
    tokens.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in encoder.projector.parameters())
    assert all(p.grad is None for p in encoder.vit.parameters())


def test_unfrozen_tower_trains():
    encoder = build(frozen=False).train()
    assert encoder.vit.training
    encoder([canvas(encoder, (1, 1))], [(1, 1)])[0].sum().backward()
    # tokens come from the last layer before the post-layernorm
    unused = {n for n, p in encoder.vit.named_parameters() if p.grad is None}
    assert {'.'.join(n.split('.')[-2:]) for n in unused} == {
        'post_layernorm.weight', 'post_layernorm.bias'}


def test_odd_patch_grid_is_refused():
    with pytest.raises(ValueError, match='even patch grid'):
        build(tile_size=14 * 3)


def test_canvas_that_does_not_match_its_grid_is_refused(encoder):
    with pytest.raises(ValueError, match='does not match grid'):
        encoder([canvas(encoder, (1, 1))], [(1, 2)])
