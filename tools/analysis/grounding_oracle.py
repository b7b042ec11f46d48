"""Study: does the tiny grounding branch follow a prompt that carries the
target perfectly? (issue 10; docs/en/notes/refer_study.md)

    python tools/analysis/grounding_oracle.py --data DIR [--mode bow|const|
        point|point-dense|point-vector] [--locator] [--iters 600] [--lr 1e-3]
        [--batch 4] [--dim 64] [--mlp 256] [--trunk 16] [--size 256]
        [--freeze-encoder] [--overfit]

Builds the tiny RRSIS model (``configs/geopixel/rrsis_tiny.py``) on a
synthetic RRSIS-D folder (``make_synthetic.py`` output) and trains only its
grounding branch (SAM2 encoder, mask decoder, seg projector) with the
model's own losses, the LLM path replaced by an oracle prompt:

* ``bow``: the mean of learned word embeddings of the expression, through
  the model's seg projector (no LLM, nothing but the words);
* ``const``: the same prompt for every sample (what a [SEG] state that
  ignores the expression gives);
* ``point``: a positive point on the target (its inside pixel nearest the
  centroid) through SAM2's own prompt encoder: the prompt SAM is built for;
* ``point-dense``: the same point, plus a Gaussian heat map around it
  (sigma 8 px, logits -4..4) through SAM's mask-prompt input: a dense
  prompt that carries the location;
* ``point-vector``: SAM2's sparse embedding of that point used as the
  [SEG]-style prompt vector (what the decoder gets if the LLM encoded the
  location perfectly).

``--locator`` turns on the decoder's locator (``SAM2MaskDecoder(
locator=True)``) and adds its pointing loss; the test then also reports how
often the locator's best cell lies on the target.

``--dim``/``--trunk``/``--mlp``/``--size`` change the SAM2 widths and input
size; ``--overfit`` trains on the first batch only (a check that gradients
reach the masks). Prints the training loss every 100 iterations and the
test split's P@X / oIoU / mIoU.
"""
import argparse
import copy
import os.path as osp
import sys
import time

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--data', required=True)
    p.add_argument('--iters', type=int, default=600)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--batch', type=int, default=4)
    p.add_argument('--mode', default='bow',
                   choices=['bow', 'const', 'point', 'point-dense',
                            'point-vector'])
    p.add_argument('--locator', action='store_true')
    p.add_argument('--dim', type=int, default=64)
    p.add_argument('--overfit', action='store_true')
    p.add_argument('--bce-weight', type=float, default=1.0,
                   help='times the config\'s BCE weight (2.0)')
    p.add_argument('--dice-weight', type=float, default=1.0,
                   help='times the config\'s Dice weight (0.5)')
    p.add_argument('--freeze-encoder', action='store_true')
    p.add_argument('--size', type=int, default=256)
    p.add_argument('--trunk', type=int, default=16)
    p.add_argument('--mlp', type=int, default=256)
    args = p.parse_args()
    from mmengine.dataset import pseudo_collate

    from geopixel.engine import setup_mmengine
    from geopixel.registry import DATASETS
    from geopixel.testing import get_config, tiny_model
    from geopixel.evaluation.metrics import RRSISMetric
    setup_mmengine()
    cfg = get_config('configs/geopixel/rrsis_tiny.py', args.data)
    # one sentence (one oracle prompt) per training sample
    cfg.train_dataloader.dataset.sentences_per_sample = 1
    neck = cfg.model.grounding_encoder.overrides.image_encoder.neck
    neck.d_model = args.dim
    neck.position_encoding.num_pos_feats = args.dim
    trunk = cfg.model.grounding_encoder.overrides.image_encoder.trunk
    trunk.embed_dim = args.trunk
    neck.backbone_channel_list = [args.trunk * 8, args.trunk * 4,
                                  args.trunk * 2, args.trunk]
    cfg.model.mask_decoder.mlp_dim = args.mlp
    cfg.model.grounding_encoder.image_size = args.size
    cfg.model.grounding_encoder.frozen = args.freeze_encoder
    cfg.model.mask_decoder.locator = args.locator
    torch.manual_seed(0)
    model = tiny_model(cfg)
    tok = model.tokenizer
    train = DATASETS.build(copy.deepcopy(cfg.train_dataloader.dataset))
    test = DATASETS.build(copy.deepcopy(cfg.test_dataloader.dataset))
    from geopixel.evaluation.functional.iou import intersection_union
    from geopixel.evaluation.functional.refer_probes import read_refer_split
    types = [s.expression_type for s in read_refer_split(test).samples]
    width = model.llm.hidden_size
    words = torch.nn.EmbeddingBag(len(tok), width, mode='mean')
    params = ([] if args.freeze_encoder else
              list(model.grounding_encoder.parameters())) + (
              list(model.mask_decoder.parameters()) +
              list(model.seg_projector.parameters()) +
              list(words.parameters()))
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.95),
                            weight_decay=0)

    def target_point(ds, size):
        """The target's inside pixel nearest its centroid, in SAM2 input
        coordinates ([1, 1, 2], x then y)."""
        scale = model.grounding_encoder.input_size
        m = ds.gt_masks[0].bool()
        ys, xs = torch.nonzero(m, as_tuple=True)
        cy, cx = ys.float().mean(), xs.float().mean()
        k = ((ys - cy)**2 + (xs - cx)**2).argmin()
        return torch.tensor([[[xs[k] * scale / size[1],
                               ys[k] * scale / size[0]]]]).float()

    def prompts_for(samples):
        out = []
        for ds in samples:
            if args.mode == 'point-vector':
                sparse, _ = model.mask_decoder.prompt_encoder(
                    points=(target_point(ds, ds.gt_masks.shape[-2:]),
                            torch.ones(1, 1, dtype=torch.int)),
                    boxes=None, masks=None)
                out.append(sparse[0, :1])
                continue
            ids = tok.encode(ds.metainfo['ref_exp'], add_special_tokens=False)
            if args.mode == 'const':
                ids = [1]
            h = words(torch.tensor([ids]))
            out.append(model.seg_projector(h))
        return out

    from geopixel.models.decoders.sam2_mask_decoder import \
        postprocess_masks

    def point_masks(feats, samples, sizes):
        """Oracle: a positive point at the target's inside pixel nearest
        its centroid, through SAM2's own prompt encoder."""
        dec = model.mask_decoder
        scale = model.grounding_encoder.input_size
        high = dec.project_high_res(feats['high_res'])
        out = []
        for i, (ds, size) in enumerate(zip(samples, sizes)):
            pt = target_point(ds, size)
            heat = None
            if args.mode == 'point-dense':
                # SAM's mask prompt is 4x the embedding side: 4 px cells
                centres = torch.arange(scale // 4.) * 4 + 2
                yy, xx = torch.meshgrid(centres, centres, indexing='ij')
                d2 = (xx - pt[0, 0, 0])**2 + (yy - pt[0, 0, 1])**2
                heat = (torch.exp(-d2 / (2 * 8.**2)) * 8 - 4)[None, None]
            sparse, dense = dec.prompt_encoder(
                points=(pt, torch.ones(1, 1, dtype=torch.int)), boxes=None,
                masks=heat)
            low, *_ = dec.mask_decoder(
                image_embeddings=feats['image_embed'][i:i + 1],
                image_pe=dec.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense, multimask_output=False,
                repeat_image=False,
                high_res_features=[h[i:i + 1] for h in high])
            out.append(postprocess_masks(low, size))
        return out

    point_mode = args.mode in ('point', 'point-dense')

    def decode(items, training):
        """(samples, grounding features, oracle prompts or None, mask
        logits) of a list of dataset items."""
        batch = model.data_preprocessor(pseudo_collate(items), training)
        samples = batch['data_samples']
        images = batch['inputs']['images']
        feats = model.grounding_features(images)
        sizes = model.grounding_encoder.original_sizes(images)
        if point_mode:
            return samples, feats, None, point_masks(feats, samples, sizes)
        prompts = prompts_for(samples)
        return samples, feats, prompts, model.mask_decoder(
            feats, prompts, sizes)

    g = torch.Generator().manual_seed(0)
    start = time.time()
    model.train()
    for it in range(args.iters):
        idx = torch.randint(len(train), (args.batch, ), generator=g)
        if args.overfit:
            idx = torch.arange(args.batch)
        samples, feats, prompts, pred = decode(
            [train[int(i)] for i in idx], True)
        loss = 0
        for logits, ds in zip(pred, samples):
            gt = ds.gt_masks.float()
            loss = loss + args.bce_weight * model.loss_bce(
                logits, gt).flatten(1).mean(1).sum()
            loss = loss + args.dice_weight * model.loss_dice(logits,
                                                             gt).sum()
        if args.locator and not point_mode:
            loss = loss + model.mask_decoder.auxiliary_loss(
                feats, prompts, [ds.gt_masks for ds in samples])
        loss = loss / len(samples)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if it % 100 == 0:
            print(it, round(loss.item(), 4), round(time.time() - start, 1),
                  flush=True)
    model.eval()
    metric = RRSISMetric()
    areas = []
    hits = []
    by_type = {}  # expression type -> [(IoU, locator hit or None)]
    with torch.no_grad():
        for i in range(0, len(test), 8):
            samples, feats, prompts, pred = decode(
                [test[j] for j in range(i, min(i + 8, len(test)))], False)
            if args.locator and not point_mode:
                high = model.mask_decoder.project_high_res(feats['high_res'])
                for k, (ds, q) in enumerate(zip(samples, prompts)):
                    scores = model.mask_decoder.locate(
                        feats['image_embed'][k:k + 1],
                        [h[k:k + 1] for h in high], q)
                    share = torch.nn.functional.adaptive_avg_pool2d(
                        ds.gt_masks[None].float(), scores.shape[-2:])
                    hits.append(
                        float(share.flatten()[scores.flatten().argmax()] > 0))
            for k, (ds, m) in enumerate(zip(samples, pred)):
                areas.append((float((m > 0).sum()),
                              float(ds.gt_masks[0].sum())))
                inter, union = intersection_union((m[0] > 0).numpy(),
                                                  ds.gt_masks[0].numpy())
                iou = inter / max(union, 1)
                hit = hits[i + k] if hits else None
                by_type.setdefault(types[i + k], []).append((iou, hit))
            metric.process(None, [
                dict(gt_masks=ds.gt_masks.numpy(), pred_masks=m.numpy())
                for ds, m in zip(samples, pred)
            ])
    pred_area = sum(a for a, _ in areas) / len(areas)
    gt_area = sum(b for _, b in areas) / len(areas)
    empty = sum(a == 0 for a, _ in areas) / len(areas)
    print(args, metric.compute_metrics(metric.results), flush=True)
    print(f'mean predicted area {pred_area:.0f} px, target {gt_area:.0f} '
          f'px, empty predictions {empty:.0%}')
    if hits:
        print(f'locator points at the target in {sum(hits) / len(hits):.1%} '
              'of test samples')
    for name, rows in sorted(by_type.items(), key=lambda kv: str(kv[0])):
        line = (f'{name}: {len(rows)} samples, mIoU '
                f'{100 * sum(r[0] for r in rows) / len(rows):.1f}')
        if hits:
            line += (', locator on the target '
                     f'{sum(r[1] for r in rows) / len(rows):.1%}')
        print(line)


if __name__ == '__main__':
    main()
