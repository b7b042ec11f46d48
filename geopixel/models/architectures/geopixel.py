"""GeoPixel: tiles -> CLIP -> InternLM2 (+ partial LoRA) -> [SEG] -> SAM2.

One class serves training (``loss``), evaluation and inference
(``predict``) and export (``tensor``). It talks to its parts only through
their base-class interfaces, and reads every dimension from the built parts:
the LLM width sizes the vision projector and the [SEG] projector, the
grounding encoder sizes the decoder and the projector output.

Sequence layout per sample: the text ids of the pipeline (BOS, chat
template, answer) with the image's visual tokens inserted at
``image_token_index`` (0: before BOS, the training order; 1: after BOS, the
inference order). Batches are right-padded. The k-th ``[SEG]`` token's
final hidden state (at its own position) prompts the k-th mask.
"""
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.model import BaseModel
from torch import nn

from geopixel.registry import (GROUNDING_ENCODERS, LLM_ADAPTERS,
                               MASK_DECODERS, MODELS, TOKENIZERS,
                               VISION_ENCODERS)
from geopixel.structures import IGNORE_INDEX, SEG_TOKEN, glamm_phrases
from ..data_preprocessors import GeoPixelDataPreprocessor

IMAGE_TOKEN = -1
PAD_TOKEN = -2
PREDICT_MODES = ('generate', 'teacher_forced')


def _build(registry, cfg, **defaults):
    if isinstance(cfg, nn.Module):
        return cfg
    cfg = dict(cfg)
    for key, value in defaults.items():
        cfg.setdefault(key, value)
    return registry.build(cfg)


@MODELS.register_module()
class GeoPixel(BaseModel):
    """Pixel-grounded multimodal LLM for remote sensing.

    Args:
        tokenizer: tokenizer config (``dict(type=InternLM2Tokenizer,
            path=...)``, built by ``TOKENIZERS``) or a tokenizer.
        vision_encoder / llm / grounding_encoder / mask_decoder: component
            configs (registries VISION_ENCODERS, LLM_ADAPTERS,
            GROUNDING_ENCODERS, MASK_DECODERS) or built modules.
        seg_projector: [SEG] projector config (MODELS).
        loss_bce / loss_dice: mask losses (weights 2.0 and 0.5 in the
            paper); each is averaged over all masks of the batch.
        loss_ce_weight: weight of the text loss.
        generation_cfg: ``max_new_tokens``, ``do_sample``, ``temperature``,
            ``top_p`` for ``predict``.
        predict_mode: ``'generate'`` (answer generated, masks for the
            generated ``[SEG]``) or ``'teacher_forced'`` (answer given, as
            in LISA-style referring-segmentation evaluation).
        checkpoint: a released GeoPixel checkpoint (file or folder) to load
            after building (every key must fit).
        ixc_checkpoint: an IXC-2.5 folder whose LLM, CLIP, projector and
            separator weights to load (training from IXC-2.5 as the paper
            does; grounding parts come from their own checkpoints).
    """

    def __init__(self,
                 tokenizer,
                 vision_encoder: dict,
                 llm: dict,
                 grounding_encoder: dict,
                 mask_decoder: dict,
                 seg_projector: dict = dict(type='SegProjector'),
                 data_preprocessor: Optional[dict] = None,
                 loss_bce: dict = dict(
                     type='CrossEntropyLoss',
                     use_sigmoid=True,
                     reduction='none',
                     loss_weight=2.0),
                 loss_dice: dict = dict(
                     type='DiceLoss',
                     naive_dice=True,
                     eps=1e-3,
                     reduction='none',
                     loss_weight=0.5),
                 loss_ce_weight: float = 1.0,
                 generation_cfg: Optional[dict] = None,
                 predict_mode: str = 'generate',
                 end_of_turn_token: str = '[UNUSED_TOKEN_145]',
                 checkpoint: Optional[str] = None,
                 ixc_checkpoint: Optional[str] = None,
                 init_cfg: Optional[dict] = None):
        if data_preprocessor is None:
            # a class, not a name: BaseModel builds it in MMEngine's root
            data_preprocessor = dict(type=GeoPixelDataPreprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if predict_mode not in PREDICT_MODES:
            raise ValueError(f'predict_mode must be one of {PREDICT_MODES}')
        self.tokenizer = TOKENIZERS.build(tokenizer)
        tok = self.tokenizer
        self.seg_token_id = tok.token_id(SEG_TOKEN)
        self.pad_token_id = tok.pad_token_id
        self.eos_token_ids = [tok.eos_token_id]
        self.end_of_turn_token = end_of_turn_token
        self.llm = _build(LLM_ADAPTERS, llm, vocab_size=len(tok))
        hidden = self.llm.hidden_size
        self.vision_encoder = _build(
            VISION_ENCODERS, vision_encoder, out_channels=hidden)
        self.grounding_encoder = _build(GROUNDING_ENCODERS, grounding_encoder)
        dim = self.grounding_encoder.hidden_dim
        self.mask_decoder = _build(
            MASK_DECODERS,
            mask_decoder,
            embed_dim=dim,
            image_size=self.grounding_encoder.input_size)
        self.seg_projector = _build(
            MODELS, seg_projector, in_channels=hidden, out_channels=dim)
        self.loss_bce = MODELS.build(loss_bce)
        self.loss_dice = MODELS.build(loss_dice)
        self.loss_ce_weight = loss_ce_weight
        self.generation_cfg = dict(max_new_tokens=512, do_sample=False)
        self.generation_cfg.update(generation_cfg or {})
        self.predict_mode = predict_mode
        self.load_report = None
        if ixc_checkpoint is not None:
            from geopixel.checkpoint import load_official_checkpoint
            self.load_report = load_official_checkpoint(
                self, ixc_checkpoint, strict=False, grow_vocab=True)
        if checkpoint is not None:
            from geopixel.checkpoint import load_official_checkpoint
            self.load_report = load_official_checkpoint(self, checkpoint)

    # -- building blocks --------------------------------------------------
    def encode_images(self, inputs: dict, data_samples) -> List[torch.Tensor]:
        grids = [tuple(ds.hd_grid) for ds in data_samples]
        tokens = self.vision_encoder(inputs['canvases'], grids)
        for t, ds in zip(tokens, data_samples):
            expected = ds.metainfo.get('num_image_tokens')
            if expected is not None and t.shape[0] != expected:
                raise ValueError(
                    f'{ds.metainfo.get("img_path")}: the vision encoder gave '
                    f'{t.shape[0]} tokens, the tiler planned {expected}')
        return tokens

    def fuse(self, data_samples, visual: Sequence[torch.Tensor],
             with_labels: bool) -> Dict[str, torch.Tensor]:
        """Insert visual tokens into each text, then right-pad the batch.

        Returns ``inputs_embeds`` [B, L, H], ``attention_mask`` and
        ``im_mask`` [B, L] (bool), ``token_ids`` [B, L] (image -1, pad -2)
        and, with labels, ``labels`` [B, L] (-100 on image and pad).
        """
        embeds, ids, labels, im_masks = [], [], [], []
        for ds, vis in zip(data_samples, visual):
            text_ids = ds.input_ids.to(vis.device)
            pos = int(ds.metainfo.get('image_token_index', 0))
            text = self.llm.embed_tokens(text_ids)
            n = vis.shape[0]
            embeds.append(
                torch.cat([text[:pos], vis.to(text.dtype), text[pos:]]))
            ids.append(
                torch.cat([
                    text_ids[:pos],
                    text_ids.new_full((n, ), IMAGE_TOKEN), text_ids[pos:]
                ]))
            im_masks.append(
                torch.cat([
                    torch.zeros(pos, dtype=torch.bool, device=vis.device),
                    torch.ones(n, dtype=torch.bool, device=vis.device),
                    torch.zeros(
                        len(text_ids) - pos,
                        dtype=torch.bool,
                        device=vis.device)
                ]))
            if with_labels:
                lab = ds.labels.to(vis.device)
                labels.append(
                    torch.cat([
                        lab[:pos],
                        lab.new_full((n, ), IGNORE_INDEX), lab[pos:]
                    ]))
        length = max(e.shape[0] for e in embeds)
        pad_embed = self.llm.embed_tokens(
            torch.tensor([self.pad_token_id], device=embeds[0].device))[0]
        batch = dict(
            inputs_embeds=torch.stack([
                torch.cat([e, pad_embed.expand(length - e.shape[0], -1)])
                for e in embeds
            ]),
            attention_mask=torch.stack([
                torch.arange(length, device=e.device) < e.shape[0]
                for e in embeds
            ]),
            im_mask=torch.stack([
                nn.functional.pad(m, (0, length - m.shape[0]), value=False)
                for m in im_masks
            ]),
            token_ids=torch.stack([
                nn.functional.pad(i, (0, length - i.shape[0]),
                                  value=PAD_TOKEN) for i in ids
            ]))
        if with_labels:
            batch['labels'] = torch.stack([
                nn.functional.pad(lab, (0, length - lab.shape[0]),
                                  value=IGNORE_INDEX) for lab in labels
            ])
        return batch

    def grounding_features(self, images: Sequence[torch.Tensor]) -> dict:
        enc = self.grounding_encoder
        return enc(enc.preprocess(images))

    def seg_prompts(self, hidden: torch.Tensor,
                    token_ids: torch.Tensor) -> List[torch.Tensor]:
        """Projected hidden states of every [SEG], split per sample."""
        seg = token_ids == self.seg_token_id
        prompts = self.seg_projector(hidden[seg])
        return list(prompts.split(seg.sum(1).tolist()))

    # -- modes ------------------------------------------------------------
    def forward(self, inputs: dict, data_samples=None, mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise RuntimeError(f'invalid mode {mode!r}')

    def _forward(self, inputs: dict, data_samples) -> dict:
        """Logits, hidden states and the [SEG] mask logits, no loss."""
        batch = self.fuse(data_samples,
                          self.encode_images(inputs, data_samples), False)
        out = self.llm(batch['inputs_embeds'], batch['attention_mask'],
                       batch['im_mask'])
        prompts = self.seg_prompts(out['hidden_states'], batch['token_ids'])
        masks = self.mask_decoder(
            self.grounding_features(inputs['images']), prompts,
            self.grounding_encoder.original_sizes(inputs['images']))
        return dict(
            logits=out['logits'],
            hidden_states=out['hidden_states'],
            seg_prompts=prompts,
            masks=masks)

    def loss(self, inputs: dict, data_samples) -> Dict[str, torch.Tensor]:
        batch = self.fuse(data_samples,
                          self.encode_images(inputs, data_samples), True)
        out = self.llm(
            batch['inputs_embeds'],
            batch['attention_mask'],
            batch['im_mask'],
            labels=batch['labels'])
        prompts = self.seg_prompts(out['hidden_states'], batch['token_ids'])
        # the grounding branch always runs (ZeRO-3 and DDP need every rank
        # to touch the same parameters), even for a batch without masks
        features = self.grounding_features(inputs['images'])
        sizes = self.grounding_encoder.original_sizes(inputs['images'])
        for ds, p in zip(data_samples, prompts):
            n_gt = len(ds.gt_masks) if 'gt_masks' in ds else 0
            if p.shape[0] != n_gt:
                raise ValueError(
                    f'{ds.metainfo.get("img_path")} '
                    f'({ds.metainfo.get("record_id")}): {p.shape[0]} [SEG] '
                    f'token(s) but {n_gt} ground-truth mask(s)')
        pred = self.mask_decoder(features, prompts, sizes)
        touch = self.mask_decoder.zero_loss() + sum(
            p.sum() * 0.0 for p in self.seg_projector.parameters())
        bce, dice = [], []
        for logits, ds in zip(pred, data_samples):
            if logits.shape[0] == 0:
                continue
            gt = ds.gt_masks.to(logits.device).float()
            bce.append(self.loss_bce(logits, gt).flatten(1).mean(1))
            dice.append(self.loss_dice(logits, gt))
        n_masks = sum(x.shape[0] for x in bce)
        if n_masks:
            loss_bce = torch.cat(bce).sum() / n_masks
            loss_dice = torch.cat(dice).sum() / n_masks
        else:
            loss_bce = loss_dice = out['loss'].new_zeros(())
        return dict(
            loss_ce=out['loss'] * self.loss_ce_weight,
            loss_mask_bce=loss_bce + touch,
            loss_mask_dice=loss_dice)

    @torch.no_grad()
    def predict(self, inputs: dict, data_samples):
        visual = self.encode_images(inputs, data_samples)
        features = self.grounding_features(inputs['images'])
        sizes = self.grounding_encoder.original_sizes(inputs['images'])
        for i, ds in enumerate(data_samples):
            feats_i = dict(
                image_embed=features['image_embed'][i:i + 1],
                high_res=[h[i:i + 1] for h in features['high_res']])
            if self.predict_mode == 'teacher_forced':
                self._predict_teacher_forced(ds, visual[i], feats_i, sizes[i])
            else:
                self._predict_generate(ds, visual[i], feats_i, sizes[i])
        return data_samples

    def _predict_generate(self, ds, visual, features, size) -> None:
        if 'labels' in ds:
            raise ValueError(
                f'{ds.metainfo.get("img_path", "a sample")}: generation '
                'needs the question only, but this sample holds the whole '
                'conversation (a training-format pipeline). Use the dataset '
                'config\'s test_pipeline with predict_mode=\'generate\', or '
                'teacher_forced_test_pipeline with '
                'predict_mode=\'teacher_forced\'.')
        batch = self.fuse([ds], [visual], False)
        gen = self.llm.generate(
            batch['inputs_embeds'],
            batch['im_mask'],
            eos_token_ids=self.eos_token_ids,
            **self.generation_cfg)
        ids, hidden = gen['ids'], gen['hidden_states']
        seg_at = (ids[:hidden.shape[0]] == self.seg_token_id)
        prompts = self.seg_projector(hidden[seg_at])
        masks = self.mask_decoder(features, [prompts], [size])[0]
        text = self.tokenizer.decode(ids.tolist(), skip_special_tokens=True)
        text = text.replace(self.end_of_turn_token, '').strip()
        ds.pred_ids = ids
        ds.pred_text = text
        ds.pred_phrases = glamm_phrases(text)
        ds.pred_masks = masks

    def _predict_teacher_forced(self, ds, visual, features, size) -> None:
        if not bool((ds.input_ids == self.seg_token_id).any()):
            raise ValueError(
                f'{ds.metainfo.get("img_path", "a sample")}: teacher-forced '
                'prediction needs the answer with its [SEG] in the input, '
                'but this sample holds no [SEG] (a generation prompt?). '
                'Use the dataset config\'s teacher_forced_test_pipeline with '
                'predict_mode=\'teacher_forced\', or test_pipeline with '
                'predict_mode=\'generate\'.')
        batch = self.fuse([ds], [visual], False)
        out = self.llm(batch['inputs_embeds'], batch['attention_mask'],
                       batch['im_mask'])
        prompts = self.seg_prompts(out['hidden_states'], batch['token_ids'])
        ds.pred_masks = self.mask_decoder(features, prompts, [size])[0]
        ds.pred_text = ds.metainfo.get('conversation_text', '')
        ds.pred_phrases = glamm_phrases(ds.pred_text)

    # -- checkpoints ------------------------------------------------------
    def trainable_state_dict(self) -> Dict[str, torch.Tensor]:
        """Parameters that train, by ``requires_grad`` (small checkpoints)."""
        return {
            name: p.detach()
            for name, p in self.named_parameters() if p.requires_grad
        }
