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
import time
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.model import BaseModel
from torch import nn

from geopixel.registry import (GROUNDING_ENCODERS, LLM_ADAPTERS,
                               MASK_DECODERS, MODELS, TOKENIZERS,
                               VISION_ENCODERS)
from geopixel.structures import (IGNORE_INDEX, PHRASE_END, PHRASE_START,
                                 SEG_TOKEN, glamm_phrases)
from ..data_preprocessors import GeoPixelDataPreprocessor
from ..heads import request_words
from ..losses import global_mean_divisors, mean_over_ranks
from ..llms.generation import pad_caches, select_cache
from .image_context import IMAGE_TOKEN, PAD_TOKEN, ImageContext, Response
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
        seg_words_head: optional auxiliary head (MODELS, e.g.
            ``SegWordsHead``): each [SEG] state names the words it
            grounds (``loss_seg_words``; training only, off in the paper).
        loss_bce / loss_dice: mask losses (weights 2.0 and 0.5 in the
            paper); each is averaged over all masks of the batch (under
            DDP, of the global batch: see ``loss``).
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
        build_on_meta: build the parts ``checkpoint`` / ``ixc_checkpoint``
            fill on the meta device and stream the file into them (peak
            memory: the model plus one tensor); what no file holds gets its
            usual initialisation (``geopixel/checkpoint/meta.py``). False:
            the eager build (random init, then the whole file read).
    """

    def __init__(self,
                 tokenizer,
                 vision_encoder: dict,
                 llm: dict,
                 grounding_encoder: dict,
                 mask_decoder: dict,
                 seg_projector: dict = dict(type='SegProjector'),
                 seg_words_head: Optional[dict] = None,
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
                 build_on_meta: bool = True,
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
        # the parts a checkpoint fills are built empty (meta device) and
        # filled tensor by tensor: never a random copy beside the real one
        from geopixel.checkpoint.meta import parameters_on_meta, streamable
        whole = (build_on_meta and checkpoint is not None
                 and streamable(checkpoint))
        with parameters_on_meta(whole or (build_on_meta
                                          and ixc_checkpoint is not None)):
            self.llm = _build(LLM_ADAPTERS, llm, vocab_size=len(tok))
            hidden = self.llm.hidden_size
            self.vision_encoder = _build(
                VISION_ENCODERS, vision_encoder, out_channels=hidden)
        with parameters_on_meta(whole):
            self.grounding_encoder = _build(GROUNDING_ENCODERS,
                                            grounding_encoder)
            dim = self.grounding_encoder.hidden_dim
            self.mask_decoder = _build(
                MASK_DECODERS,
                mask_decoder,
                embed_dim=dim,
                image_size=self.grounding_encoder.input_size)
            self.seg_projector = _build(
                MODELS, seg_projector, in_channels=hidden, out_channels=dim)
        self.seg_words_head = None
        if seg_words_head is not None:
            self.seg_words_head = _build(MODELS, seg_words_head,
                                         in_channels=hidden,
                                         vocab_size=len(tok))
            # what request_words needs, looked up once
            self._words_ids = dict(
                seg_id=self.seg_token_id,
                end_of_turn_id=tok.token_id(end_of_turn_token),
                phrase_start_id=tok.token_id(PHRASE_START),
                phrase_end_id=tok.token_id(PHRASE_END),
                ignore_ids=(tok.bos_token_id, tok.eos_token_id,
                            self.pad_token_id))
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
        from geopixel.checkpoint.meta import materialise_leftovers
        self.initialised_keys = materialise_leftovers(self)

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
        """The training losses, each a mean over the global batch.

        Means are over answer tokens (text), masks (mask losses) and [SEG]
        states (``loss_seg_words``). Under DDP or ZeRO (an initialised
        process group of W > 1) each rank returns its share, its sum over
        ``global count / W`` (:func:`global_mean_divisors`), so that the
        gradient averaged over ranks is that of the mean over every rank's
        items, as one process on the whole batch gets it; a rank's own
        values are not a loss of any batch (``parse_losses`` logs their
        mean over ranks). With one process nothing changes.
        """
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
        # a sample without masks gets an empty target, so that the mask
        # losses run for every sample (the same graph on every rank)
        gt_masks = [
            ds.gt_masks.to(out['loss'].device) if 'gt_masks' in ds else
            torch.zeros((0, *size), dtype=torch.bool,
                        device=out['loss'].device)
            for ds, size in zip(data_samples, sizes)
        ]
        pred, extra = self.mask_decoder.forward_train(
            features, prompts, sizes, gt_masks)
        # 0 that reaches every trainable part of the grounding branch: on a
        # rank without masks nothing else does, and DDP then waits for
        # gradients that never come
        touch = self.mask_decoder.zero_loss() + sum(
            p.sum() * 0.0 for p in self.seg_projector.parameters()) + sum(
                f.sum() * 0.0
                for f in [features['image_embed'], *features['high_res']])
        # one all-reduce of the counts, on every rank at every step (also
        # without masks); one process gets its own counts back
        n_tokens = int((batch['labels'][:, 1:] != IGNORE_INDEX).sum())
        n_masks = sum(p.shape[0] for p in prompts)
        token_divisor, mask_divisor = global_mean_divisors(
            [n_tokens, n_masks], out['loss'].device)
        loss_ce = out['loss']  # the LLM's mean over this rank's tokens
        if token_divisor != n_tokens:
            # several ranks holding unequal shares: rescale to the share
            # (a rank without answer tokens has a NaN mean and adds 0)
            loss_ce = (loss_ce * (n_tokens / token_divisor)
                       if n_tokens else out['logits'].sum() * 0.0)
        bce, dice = [], []
        for logits, gt in zip(pred, gt_masks):
            gt = gt.float()
            bce.append(self.loss_bce(logits, gt).flatten(1).mean(1))
            dice.append(self.loss_dice(logits, gt))
        # no mask anywhere: 0, still through the decoder's graph
        loss_bce = torch.cat(bce).sum() / (mask_divisor or 1)
        loss_dice = torch.cat(dice).sum() / (mask_divisor or 1)
        losses = dict(
            loss_ce=loss_ce * self.loss_ce_weight,
            loss_mask_bce=loss_bce + touch,
            loss_mask_dice=loss_dice)
        if extra is not None:
            losses['loss_mask_aux'] = extra / (mask_divisor or 1)
        if self.seg_words_head is not None:
            # one [SEG] state per mask
            losses['loss_seg_words'] = self.seg_words_loss(
                out['hidden_states'], batch['token_ids'],
                None if mask_divisor == n_masks else mask_divisor)
        return losses

    def seg_words_loss(self,
                       hidden: torch.Tensor,
                       token_ids: torch.Tensor,
                       avg_factor: Optional[float] = None) -> torch.Tensor:
        """``seg_words_head``'s loss on every [SEG] state of the batch
        (``avg_factor``: see ``SegWordsHead.loss``)."""
        bags = []
        for row in token_ids.tolist():
            bags += request_words(row, **self._words_ids)
        return self.seg_words_head.loss(
            hidden[token_ids == self.seg_token_id], bags, avg_factor)

    def parse_losses(self, losses: Dict[str, torch.Tensor]):
        """MMEngine's total loss; under DDP the logged values are the mean
        over ranks (the global batch's losses, as one process logs them),
        since each rank's own loss is only its share (see ``loss``)."""
        loss, log_vars = super().parse_losses(losses)
        return loss, mean_over_ranks(log_vars)

    @torch.no_grad()
    def predict(self, inputs: dict, data_samples):
        teacher_forced = self.predict_mode == 'teacher_forced'
        for ds in data_samples:
            self._check_predict_sample(ds, teacher_forced)
        contexts = self.image_contexts(inputs, data_samples)
        responses = self.respond(
            contexts, [ds.input_ids for ds in data_samples],
            [int(ds.metainfo.get('image_token_index', 0))
             for ds in data_samples],
            teacher_forced=teacher_forced)
        for ds, response in zip(data_samples, responses):
            ds.pred_masks = response.masks
            if teacher_forced:
                ds.pred_text = ds.metainfo.get('conversation_text', '')
                ds.pred_phrases = glamm_phrases(ds.pred_text)
            else:
                ds.pred_ids = response.ids
                ds.pred_text = response.text
                ds.pred_phrases = response.phrases
        return data_samples

    def _check_predict_sample(self, ds, teacher_forced: bool) -> None:
        where = ds.metainfo.get('img_path', 'a sample')
        if not teacher_forced and 'labels' in ds:
            raise ValueError(
                f'{where}: generation needs the question only, but this '
                'sample holds the whole conversation (a training-format '
                'pipeline). Use the dataset config\'s test_pipeline with '
                'predict_mode=\'generate\', or teacher_forced_test_pipeline '
                'with predict_mode=\'teacher_forced\'.')
        if teacher_forced and not bool(
                (ds.input_ids == self.seg_token_id).any()):
            raise ValueError(
                f'{where}: teacher-forced prediction needs the answer with '
                'its [SEG] in the input, but this sample holds no [SEG] (a '
                'generation prompt?). Use the dataset config\'s '
                'teacher_forced_test_pipeline with predict_mode='
                '\'teacher_forced\', or test_pipeline with predict_mode='
                '\'generate\'.')

    # -- inference: encode an image once, answer many times ---------------
    @torch.no_grad()
    def image_contexts(self, inputs: dict,
                       data_samples) -> List[ImageContext]:
        """Encode each image once: visual tokens and grounding features
        (``inputs`` as the data preprocessor returns them). Timings are
        the batch's seconds shared evenly among its images."""
        n = len(data_samples)
        start = time.perf_counter()
        visual = self.encode_images(inputs, data_samples)
        vision = (time.perf_counter() - start) / n
        start = time.perf_counter()
        features = self.grounding_features(inputs['images'])
        grounding = (time.perf_counter() - start) / n
        sizes = self.grounding_encoder.original_sizes(inputs['images'])
        return [
            ImageContext(
                visual=visual[i],
                features=dict(
                    image_embed=features['image_embed'][i:i + 1],
                    high_res=[h[i:i + 1] for h in features['high_res']]),
                size=tuple(sizes[i]),
                timings=dict(vision=vision, grounding=grounding))
            for i in range(n)
        ]

    @torch.no_grad()
    def respond(self,
                contexts: Sequence[ImageContext],
                input_ids: Sequence[torch.Tensor],
                image_token_index: Union[int, Sequence[int]],
                teacher_forced: bool = False,
                generation_cfg: Optional[dict] = None) -> List[Response]:
        """Answer one text per image context, as one padded batch.

        ``input_ids`` are the chat step's ids (BOS + template text) with
        the image inserted at ``image_token_index``. Generating: they end
        with the assistant prefix and the answer is decoded; the masks
        belong to the generated ``[SEG]``. Teacher forced: they hold the
        answer too, and every ``[SEG]`` in them gets a mask. Each context
        reuses the cached prefix its last sequence shares with this one,
        and afterwards caches this sequence (plus the generated tokens).
        """
        n = len(contexts)
        if len(input_ids) != n:
            raise ValueError(f'{len(input_ids)} texts for {n} images')
        if isinstance(image_token_index, int):
            image_token_index = [image_token_index] * n
        cfg = dict(self.generation_cfg, **(generation_cfg or {}))
        if teacher_forced:
            cfg = dict(forced_ids=[[] for _ in range(n)])
        seqs, reuse, parts = [], [], []
        for ctx, ids, pos in zip(contexts, input_ids, image_token_index):
            seq, embeds, im_mask = self._sequence(ctx, ids, int(pos))
            limit = len(seq) - 1  # the last token is run for its logits
            if teacher_forced:  # every [SEG] state must be computed
                limit = min(limit, seq.index(self.seg_token_id)
                            if self.seg_token_id in seq else limit)
            keep = ctx.reusable(seq, limit)
            seqs.append(seq)
            reuse.append(keep)
            parts.append((embeds[keep:], im_mask[keep:]))
        batch = self._pad_batch(contexts, reuse, parts)
        gen = self.llm.generate(
            batch['inputs_embeds'],
            batch['im_mask'],
            eos_token_ids=self.eos_token_ids,
            attention_mask=batch['attention_mask'],
            position_ids=batch['position_ids'],
            past_key_values=batch['past_key_values'],
            pad_token_id=self.pad_token_id,
            **cfg)
        start = time.perf_counter()
        prompts = []
        for i, seq in enumerate(seqs):
            if teacher_forced:
                new = torch.tensor(seq[reuse[i]:])
                hidden = gen['prefill_hidden_states'][i, -len(new):]
                prompts.append(
                    self.seg_projector(hidden[new == self.seg_token_id]))
            else:
                ids, hidden = gen['ids'][i], gen['hidden_states'][i]
                seg_at = ids[:hidden.shape[0]] == self.seg_token_id
                prompts.append(self.seg_projector(hidden[seg_at]))
        features = dict(
            image_embed=torch.cat(
                [c.features['image_embed'] for c in contexts]),
            high_res=[
                torch.cat(level) for level in zip(
                    *[c.features['high_res'] for c in contexts])
            ])
        masks = self.mask_decoder(features, prompts,
                                  [c.size for c in contexts])
        timings = dict(
            prefill=gen['prefill_seconds'] / n,
            decode=gen['decode_seconds'] / n,
            masks=(time.perf_counter() - start) / n)
        responses = []
        for i, ctx in enumerate(contexts):
            fed = gen['hidden_states'][i].shape[0]
            ctx.cached_ids = seqs[i] + gen['ids'][i][:fed].tolist()
            ctx.cache = select_cache(gen['past_key_values'], i,
                                     gen['attention_mask'][i])
            if teacher_forced:
                text = self.tokenizer.decode(
                    input_ids[i].tolist(), skip_special_tokens=True)
            else:
                text = self.tokenizer.decode(
                    gen['ids'][i].tolist(), skip_special_tokens=True)
                text = text.replace(self.end_of_turn_token, '').strip()
            responses.append(
                Response(
                    ids=gen['ids'][i],
                    text=text,
                    phrases=glamm_phrases(text),
                    masks=masks[i],
                    timings=dict(timings),
                    reused_tokens=reuse[i]))
        return responses

    def _sequence(self, ctx: ImageContext, ids: torch.Tensor, pos: int):
        """Sequence ids (``IMAGE_TOKEN`` at image positions), embeddings
        and image mask of one text with the image at ``pos``."""
        ids = ids.to(ctx.visual.device)
        text = self.llm.embed_tokens(ids)
        n = ctx.visual.shape[0]
        seq = ids[:pos].tolist() + [IMAGE_TOKEN] * n + ids[pos:].tolist()
        embeds = torch.cat([text[:pos], ctx.visual.to(text.dtype), text[pos:]])
        im_mask = torch.zeros(len(seq), dtype=torch.bool, device=ids.device)
        im_mask[pos:pos + n] = True
        return seq, embeds, im_mask

    def _pad_batch(self, contexts, reuse: List[int], parts) -> dict:
        """Left-pad the reused caches and the new tokens into one batch;
        every sample keeps its own positions."""
        past_len, length = max(reuse), max(e.shape[0] for e, _ in parts)
        embeds0 = parts[0][0]
        device, dtype = embeds0.device, embeds0.dtype
        pad = self.llm.embed_tokens(
            torch.tensor([self.pad_token_id], device=device))[0]
        n = len(parts)
        inputs_embeds = pad.to(dtype).expand(n, length, -1).clone()
        im_mask = torch.zeros(n, length, dtype=torch.bool, device=device)
        position_ids = torch.zeros(n, length, dtype=torch.long, device=device)
        attention_mask = torch.zeros(
            n, past_len + length, dtype=torch.bool, device=device)
        for i, (embeds, mask) in enumerate(parts):
            m = embeds.shape[0]
            inputs_embeds[i, length - m:] = embeds
            im_mask[i, length - m:] = mask
            position_ids[i, length - m:] = torch.arange(
                reuse[i], reuse[i] + m, device=device)
            attention_mask[i, past_len - reuse[i]:past_len] = True
            attention_mask[i, past_len + length - m:] = True
        return dict(
            inputs_embeds=inputs_embeds,
            im_mask=im_mask,
            position_ids=position_ids,
            attention_mask=attention_mask,
            past_key_values=pad_caches([c.cache for c in contexts], reuse))

    # -- checkpoints ------------------------------------------------------
    def trainable_state_dict(self) -> Dict[str, torch.Tensor]:
        """Parameters that train, by ``requires_grad`` (small checkpoints)."""
        return {
            name: p.detach()
            for name, p in self.named_parameters() if p.requires_grad
        }
