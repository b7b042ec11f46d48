"""SAM2 and SAM mask decoders at tiny size: per-sample prompt embeddings
-> one mask logit map per prompt at the original image size."""
import pytest
import torch

from geopixel.testing import tiny_component_cfg, tiny_sam_cfgs

pytest.importorskip('sam2')

KINDS = ('sam2', 'sam')
SIZES = [(300, 200), (180, 260)]


def build(kind, weights=None, frozen=False, **overrides):
    """The tiny decoder of ``kind`` and the encoder it pairs with, sized
    from that encoder as the composite model does; ``weights`` is the file
    or folder of released weights to load, ``overrides`` other decoder
    arguments."""
    from geopixel.registry import GROUNDING_ENCODERS, MASK_DECODERS
    if kind == 'sam2':
        encoder_cfg = tiny_component_cfg('grounding_encoder')
        cfg = tiny_component_cfg('mask_decoder')
    else:
        encoder_cfg, cfg = tiny_sam_cfgs()
    if weights is not None:
        cfg['checkpoint'] = weights
    cfg.update(overrides)
    torch.manual_seed(0)
    encoder = GROUNDING_ENCODERS.build(encoder_cfg)
    cfg.update(embed_dim=encoder.hidden_dim, image_size=encoder.input_size,
               frozen=frozen)
    return encoder, MASK_DECODERS.build(cfg).eval()


@pytest.fixture(scope='module', params=KINDS)
def setup(request):
    """(decoder, prompt width, features of two images of SIZES)."""
    encoder, decoder = build(request.param)
    gen = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, h, w), generator=gen,
                            dtype=torch.uint8) for h, w in SIZES]
    with torch.no_grad():
        features = encoder(encoder.preprocess(images))
    return decoder, encoder.hidden_dim, features


def prompts(dim, *counts):
    """One [n, dim] prompt tensor per count (projected [SEG] states)."""
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(n, dim, generator=gen) for n in counts]


def one_sample(features, i):
    return dict(features, image_embed=features['image_embed'][i:i + 1],
                high_res=[h[i:i + 1] for h in features['high_res']])


def test_one_mask_per_prompt_at_the_original_size(setup):
    decoder, dim, features = setup
    with torch.no_grad():
        masks = decoder(features, prompts(dim, 3, 1), SIZES)
    assert [tuple(m.shape) for m in masks] == [(3, *SIZES[0]),
                                               (1, *SIZES[1])]
    assert all(m.dtype == torch.float32 for m in masks)


def test_a_sample_without_prompts_gets_no_masks(setup):
    decoder, dim, features = setup
    p = prompts(dim, 0, 2)
    with torch.no_grad():
        masks = decoder(features, p, SIZES)
        alone = decoder(one_sample(features, 1), p[1:], SIZES[1:])[0]
    assert masks[0].shape == (0, *SIZES[0])
    torch.testing.assert_close(masks[1], alone)


def test_each_prompt_decodes_on_its_own(setup):
    """Several prompts of one image give the masks each gives alone."""
    decoder, dim, features = setup
    p = prompts(dim, 3)[0]
    sample = one_sample(features, 0)
    with torch.no_grad():
        together = decoder(sample, [p], SIZES[:1])[0]
        alone = [decoder(sample, [p[k:k + 1]], SIZES[:1])[0][0]
                 for k in range(3)]
    torch.testing.assert_close(together, torch.stack(alone), rtol=1e-4,
                               atol=1e-4)
    assert not torch.allclose(together[0], together[1])


@pytest.mark.parametrize('kind', KINDS)
def test_gradients_reach_the_prompts_even_when_frozen(kind):
    """The [SEG] embeddings train through the decoder whether or not the
    decoder itself trains."""
    for trainable in (True, False):
        encoder, decoder = build(kind, frozen=not trainable)
        dim = encoder.hidden_dim
        features = encoder(encoder.preprocess(
            [torch.zeros(3, 64, 48, dtype=torch.uint8)]))
        p = prompts(dim, 2)[0].requires_grad_()
        decoder(features, [p], [(64, 48)])[0].sum().backward()
        assert p.grad is not None and p.grad.abs().sum() > 0
        params = list(decoder.parameters())
        assert all(q.requires_grad == trainable for q in params)
        if trainable:
            assert any(q.grad is not None and q.grad.abs().sum() > 0
                       for q in params)


@pytest.mark.parametrize('kind', KINDS)
def test_zero_loss_touches_every_trainable_parameter(kind):
    _, decoder = build(kind)
    loss = decoder.zero_loss()
    assert loss.item() == 0
    loss.backward()
    assert all(q.grad is not None for q in decoder.parameters())
    _, frozen = build(kind, frozen=True)
    assert frozen.zero_loss().item() == 0


def test_sam2_uses_the_high_resolution_levels():
    encoder, decoder = build('sam2')
    dim = encoder.hidden_dim
    with torch.no_grad():
        features = encoder(encoder.preprocess(
            [torch.zeros(3, 64, 64, dtype=torch.uint8)]))
        p = prompts(dim, 1)
        plain = decoder(features, p, [(64, 64)])[0]
        shifted = dict(features,
                       high_res=[h + 1.0 for h in features['high_res']])
        assert not torch.allclose(decoder(shifted, p, [(64, 64)])[0], plain)


@pytest.mark.parametrize('height,width', [(100, 200), (200, 100)])
def test_sam_crops_the_resize_padding_before_resizing(height, width):
    """SAM pads bottom-right to a square: logits of the padding must not
    reach the mask. Content logits +1, padding -1: the mask stays > 0."""
    _, decoder = build('sam')
    side = decoder.side * 4  # low-res mask side
    low = -torch.ones(1, 1, side, side)
    if height > width:
        low[..., :side // 2] = 1
    else:
        low[..., :side // 2, :] = 1
    mask = decoder.postprocess(low, (height, width))
    assert mask.shape == (1, height, width)
    assert (mask > 0).all()


def test_sam2_loads_prompt_encoder_and_decoder_of_a_sam2_checkpoint(
        tmp_path):
    _, source = build('sam2', locator=False)
    state = {}
    for key, value in source.state_dict().items():
        head, rest = key.split('.', 1)
        state[f'sam_{head}.{rest}'] = value + 1
    state['image_encoder.trunk.pos_embed'] = torch.zeros(1)  # not ours
    path = tmp_path / 'sam2_tiny.pt'
    torch.save({'model': state}, path)
    _, loaded = build('sam2', weights=str(path), locator=False)
    for key, value in loaded.state_dict().items():
        head, rest = key.split('.', 1)
        assert torch.equal(value, state[f'sam_{head}.{rest}']), key
    # with a locator (ours, not SAM2's) every SAM2 weight still loads and
    # the locator keeps its initialisation
    _, fresh = build('sam2', locator=True)
    _, located = build('sam2', weights=str(path), locator=True)
    for key, value in located.state_dict().items():
        head, rest = key.split('.', 1)
        expected = (fresh.state_dict()[key] if head.startswith('locator_')
                    else state[f'sam_{head}.{rest}'])
        assert torch.equal(value, expected), key
    del state['sam_mask_decoder.iou_token.weight']
    torch.save({'model': state}, path)
    with pytest.raises(RuntimeError, match='iou_token'):
        build('sam2', weights=str(path), locator=True)


def test_sam_loads_the_decoder_of_a_hf_sam_folder(tmp_path):
    from safetensors.torch import save_file
    _, source = build('sam')
    state = {k: v.contiguous() + 1 for k, v in source.state_dict().items()}
    state['prompt_encoder.no_mask_embed.weight'] = state.pop(
        'no_mask_embed.weight')
    state['vision_encoder.pos_embed'] = torch.zeros(1)  # the encoder's
    save_file(state, str(tmp_path / 'model.safetensors'))
    _, loaded = build('sam', weights=str(tmp_path))
    assert torch.equal(loaded.no_mask_embed.weight,
                       state['prompt_encoder.no_mask_embed.weight'])
    for key, value in loaded.mask_decoder.state_dict().items():
        assert torch.equal(value, state['mask_decoder.' + key]), key


def build_locator():
    """The tiny SAM2 decoder with the locator, and its encoder."""
    from geopixel.registry import GROUNDING_ENCODERS, MASK_DECODERS
    cfg = dict(tiny_component_cfg('mask_decoder'), locator=True)
    torch.manual_seed(0)
    encoder = GROUNDING_ENCODERS.build(tiny_component_cfg('grounding_encoder'))
    cfg.update(embed_dim=encoder.hidden_dim, image_size=encoder.input_size)
    return encoder, MASK_DECODERS.build(cfg)


def test_without_a_locator_there_is_no_auxiliary_loss():
    _, decoder = build('sam2', locator=False)
    assert decoder.auxiliary_loss({}, [], []) is None


def test_locator_learns_to_point_at_the_target():
    """Only the locator and one prompt train, on its pointing loss alone:
    its best cell must end inside the target square."""
    encoder, decoder = build_locator()
    image = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        features = encoder(encoder.preprocess([image]))
    target = torch.zeros(1, 64, 64)
    target[0, 40:52, 8:20] = 1
    prompt = torch.nn.Parameter(torch.randn(1, encoder.hidden_dim))
    params = [prompt] + [p for n, p in decoder.named_parameters()
                         if n.startswith('locator_')]
    opt = torch.optim.Adam(params, lr=1e-2)
    first = None
    for _ in range(60):
        loss = decoder.auxiliary_loss(features, [prompt], [target])
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 4
    high_res = decoder.project_high_res(features['high_res'])
    with torch.no_grad():
        scores = decoder.locate(features['image_embed'], high_res, prompt)
    side = scores.shape[-1]
    best = int(scores.flatten().argmax())
    row, col = divmod(best, side)
    assert target[0, row * 64 // side, col * 64 // side] == 1


def test_locator_loss_and_masks_take_gradients_and_skip_empty_samples():
    encoder, decoder = build_locator()
    images = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8)
              for h, w in SIZES]
    features = encoder(encoder.preprocess(images))
    prompt = torch.randn(2, encoder.hidden_dim, requires_grad=True)
    gt = torch.zeros(2, *SIZES[0])
    gt[:, 10:40, 20:60] = 1
    loss = decoder.auxiliary_loss(
        features, [prompt, torch.zeros(0, encoder.hidden_dim)], [gt, None])
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert prompt.grad.abs().sum() > 0
    assert decoder.locator_key_s0.weight.grad.abs().sum() > 0
    masks = decoder(features, [prompt.detach(), prompt.detach()[:1]], SIZES)
    assert [tuple(m.shape) for m in masks] == [(2, *SIZES[0]),
                                               (1, *SIZES[1])]
    assert all(torch.isfinite(m).all() for m in masks)


@pytest.mark.parametrize('locator', [True, False])
def test_forward_train_equals_forward_and_auxiliary_loss(locator):
    """One locator pass per sample gives the same masks and loss (and
    gradients) as the forward and the auxiliary loss computed apart."""
    encoder, decoder = build_locator()
    decoder.locator = locator
    images = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8,
                            generator=torch.Generator().manual_seed(2))
              for h, w in SIZES]
    features = encoder(encoder.preprocess(images))
    prompts = [torch.randn(2, encoder.hidden_dim),
               torch.zeros(0, encoder.hidden_dim)]
    gt = torch.zeros(2, *SIZES[0])
    gt[0, 10:40, 20:60] = 1  # the second target is empty: no signal
    masks, loss = decoder.forward_train(features, prompts, SIZES, [gt, None])
    apart = decoder(features, prompts, SIZES)
    assert all(torch.equal(a, b) for a, b in zip(masks, apart))
    if not locator:
        assert loss is None
        return
    expected = decoder.auxiliary_loss(features, prompts, [gt, None])
    assert torch.equal(loss, expected) and loss > 0
