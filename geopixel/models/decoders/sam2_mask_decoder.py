"""SAM2's prompt encoder and mask decoder, prompted by [SEG] embeddings.

Per sample, the projected ``[SEG]`` embeddings are the sparse prompts
([n, 1, D]); the dense prompt is the no-mask embedding; the image embedding
is repeated per prompt; ``multimask_output=False``. In training the decoder
returns mask token 0; in eval mode SAM2's stability fallback may pick the
best of tokens 1-3 (the reference behaviour; ``stability_fallback=False``
always takes token 0). Low-resolution logits are resized bilinearly
straight to the original image size.

The reference casts the image embedding to bf16 right before the decoder,
even in fp32 runs; ``round_image_embed_to_bf16`` (default True) reproduces
that rounding, which measurably changes mask logits.

``locator=True`` (off in the paper's recipe, on in the tiny configs) adds a
locator: each prompt scores every stride-4 cell of the image (a scaled dot
product with the cell's SAM2 features and positional encoding). The scores
enter SAM's own mask-prompt input as the dense prompt, their log-softmax
over cells (relative to the best cell) is added to the mask logits, and
:meth:`auxiliary_loss` trains them to point at the target. A SAM2 decoder
trained from scratch does not learn to localise a lone sparse token within
a CPU budget: it settles on "all objects" (docs/en/notes/refer_study.md).
"""
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from geopixel.registry import MASK_DECODERS
from .base import BaseMaskDecoder


@MASK_DECODERS.register_module()
class SAM2MaskDecoder(BaseMaskDecoder):
    """Args:
        embed_dim: prompt width (the grounding encoder's ``hidden_dim``;
            the composite model fills it in).
        image_size: grounding encoder input side (fills in too).
        frozen: keep the decoder fixed (GeoPixel trains it: False).
        stability_fallback: SAM2's eval-time token selection.
        round_image_embed_to_bf16: reproduce the reference's bf16 cast.
        mlp_dim / num_heads / iou_head_hidden_dim: SAM2's fixed sizes
            (2048 / 8 / 256); smaller values only for tiny CPU models.
        checkpoint: a SAM2 ``.pt`` whose ``sam_prompt_encoder`` and
            ``sam_mask_decoder`` weights to load.
        locator: add the locator (new weights ``locator_*``).
        locator_loss_weight: weight of its pointing loss.
    """

    def __init__(self,
                 embed_dim: int = 256,
                 image_size: int = 1024,
                 frozen: bool = False,
                 stability_fallback: bool = True,
                 round_image_embed_to_bf16: bool = True,
                 mlp_dim: int = 2048,
                 num_heads: int = 8,
                 iou_head_hidden_dim: int = 256,
                 checkpoint: Optional[str] = None,
                 locator: bool = False,
                 locator_loss_weight: float = 1.0):
        super().__init__()
        from sam2.modeling.sam.mask_decoder import MaskDecoder
        from sam2.modeling.sam.prompt_encoder import PromptEncoder
        from sam2.modeling.sam.transformer import TwoWayTransformer
        side = image_size // 16
        self.prompt_encoder = PromptEncoder(
            embed_dim=embed_dim,
            image_embedding_size=(side, side),
            input_image_size=(image_size, image_size),
            mask_in_chans=16)
        self.mask_decoder = MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=2,
                embedding_dim=embed_dim,
                mlp_dim=mlp_dim,
                num_heads=num_heads),
            transformer_dim=embed_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=iou_head_hidden_dim,
            use_high_res_features=True,
            iou_prediction_use_sigmoid=True,
            pred_obj_scores=True,
            pred_obj_scores_mlp=True,
            use_multimask_token_for_obj_ptr=True,
            dynamic_multimask_via_stability=stability_fallback,
            dynamic_multimask_stability_delta=0.05,
            dynamic_multimask_stability_thresh=0.98)
        self.embed_dim = embed_dim
        self.locator = locator
        self.locator_loss_weight = locator_loss_weight
        if locator:
            self.locator_query = torch.nn.Linear(embed_dim, embed_dim)
            self.locator_key = torch.nn.Conv2d(embed_dim, embed_dim, 1)
            # SAM2's projected stride-8 / stride-4 features (D/4, D/8 wide):
            # small objects need finer cells than the stride-16 embedding
            self.locator_key_s1 = torch.nn.Conv2d(embed_dim // 4, embed_dim,
                                                  1)
            self.locator_key_s0 = torch.nn.Conv2d(embed_dim // 8, embed_dim,
                                                  1)
        self.frozen = frozen
        self.round_image_embed_to_bf16 = round_image_embed_to_bf16
        from geopixel.checkpoint.meta import weights_deferred
        if checkpoint is not None and not weights_deferred():
            self.load_sam2_weights(checkpoint)
        if frozen:
            self.requires_grad_(False)

    def load_sam2_weights(self, checkpoint: str) -> None:
        """Prompt encoder and mask decoder weights from a SAM2 ``.pt``."""
        from ..grounding_encoders.sam2 import load_sam2_checkpoint
        state = load_sam2_checkpoint(checkpoint)
        prompt_encoder, mask_decoder = {}, {}
        for key, value in state.items():
            if key.startswith('sam_prompt_encoder.'):
                prompt_encoder[key[19:]] = value
            elif key.startswith('sam_mask_decoder.'):
                mask_decoder[key[17:]] = value
        # every SAM2 weight must fit; a locator is ours and keeps its init
        self.prompt_encoder.load_state_dict(prompt_encoder, strict=True)
        self.mask_decoder.load_state_dict(mask_decoder, strict=True)
        from geopixel.checkpoint.frozen import mark_loaded
        mark_loaded(self.prompt_encoder, checkpoint, prompt_encoder)
        mark_loaded(self.mask_decoder, checkpoint, mask_decoder)

    def project_high_res(self, high_res: Sequence[torch.Tensor]):
        dtype = self.mask_decoder.conv_s0.weight.dtype
        return [
            self.mask_decoder.conv_s0(high_res[0].to(dtype)),
            self.mask_decoder.conv_s1(high_res[1].to(dtype))
        ]

    def decode(self, image_embed: torch.Tensor,
               high_res: Sequence[torch.Tensor],
               prompts: torch.Tensor) -> dict:
        """Low-res logits for one image ([1, C, h, w]) and its n prompts.

        ``high_res`` are already projected (``project_high_res``).
        """
        n = prompts.shape[0]
        side = self.prompt_encoder.image_embedding_size
        # everything in the decoder's own dtype: SAM2's neck returns fp32
        # even in a bf16 model, and its transformer refuses mixed inputs
        dtype = self.mask_decoder.iou_token.weight.dtype
        sparse = prompts[:, None, :].to(dtype)
        if self.locator:
            scores = self.locate(image_embed, high_res, prompts)
            dense = self.prompt_encoder._embed_masks(scores.to(dtype))
        else:
            dense = self.prompt_encoder.no_mask_embed.weight.reshape(
                1, -1, 1, 1).expand(n, -1, side[0], side[1])
        if self.round_image_embed_to_bf16:
            image_embed = image_embed.to(torch.bfloat16)
        masks, iou, _, object_scores = self.mask_decoder(
            image_embeddings=image_embed.to(dtype),
            image_pe=self.dense_pe().to(dtype),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense.to(dtype),
            multimask_output=False,
            repeat_image=n > 1,
            high_res_features=[h.to(dtype) for h in high_res])
        if self.locator:
            # product of experts: the decoder's mask times the locator's
            # belief in each cell relative to its best cell
            log_p = scores.flatten(1).log_softmax(-1)
            relative = log_p - log_p.amax(-1, keepdim=True)
            masks = masks + relative.view_as(scores).to(masks.dtype)
        out = dict(low_res_masks=masks, iou=iou, object_scores=object_scores)
        if self.locator:
            out['locator_scores'] = scores
        return out

    def dense_pe(self) -> torch.Tensor:
        """[1, C, h, w] random-Fourier positional encoding of the embedding
        grid, computed in the dtype of its Gaussian matrix. sam2 builds the
        grid in fp32, which a bf16 model (DeepSpeed bf16 casts buffers too)
        cannot multiply with its bf16 matrix; the release builds it in bf16.
        In fp32 this is sam2's ``get_dense_pe`` exactly."""
        gaussian = (self.prompt_encoder.pe_layer.
                    positional_encoding_gaussian_matrix)
        h, w = self.prompt_encoder.image_embedding_size
        grid = torch.ones((h, w), device=gaussian.device,
                          dtype=gaussian.dtype)
        y = (grid.cumsum(dim=0) - 0.5) / h
        x = (grid.cumsum(dim=1) - 0.5) / w
        coords = (2 * torch.stack([x, y], dim=-1) - 1) @ gaussian
        coords = 2 * math.pi * coords
        return torch.cat([coords.sin(), coords.cos()],
                         dim=-1).permute(2, 0, 1)[None]

    def locate(self, image_embed: torch.Tensor,
               high_res: Sequence[torch.Tensor],
               prompts: torch.Tensor) -> torch.Tensor:
        """[n, 1, 4h, 4w] locator scores at the mask-prompt resolution: each
        prompt against every cell's features (stride 16 with the positional
        encoding, stride 8, stride 4; ``high_res`` already projected)."""
        # the locator's own dtype (fp32 under AMP, bf16 in a bf16 model)
        dtype = self.locator_key.weight.dtype
        keys = F.interpolate(
            self.locator_key(image_embed.to(dtype) +
                             self.dense_pe().to(dtype)),
            scale_factor=4, mode='bilinear', align_corners=False)
        keys = keys + F.interpolate(
            self.locator_key_s1(high_res[1].to(dtype)), scale_factor=2,
            mode='bilinear', align_corners=False)
        keys = keys + self.locator_key_s0(high_res[0].to(dtype))
        query = self.locator_query(prompts.to(dtype))
        logits = torch.einsum('nc,chw->nhw', query, keys[0])
        return logits[:, None] / self.embed_dim**0.5

    def auxiliary_loss(self, features: dict,
                       prompts: Sequence[torch.Tensor],
                       gt_masks: Sequence[torch.Tensor]
                       ) -> Optional[torch.Tensor]:
        """The locator's pointing loss, summed over masks (None without a
        locator): cross-entropy of its softmax over cells against the
        target, i.e. -log of the probability mass it puts on the target's
        cells (each weighted by the share of the cell the target covers).
        """
        if not self.locator:
            return None
        high_res = self.project_high_res(features['high_res'])
        scores = [
            None if p.shape[0] == 0 else self.locate(
                features['image_embed'][i:i + 1],
                [h[i:i + 1] for h in high_res], p)
            for i, p in enumerate(prompts)
        ]
        return self._pointing_loss(scores, gt_masks,
                                   features['image_embed'])

    def _pointing_loss(self, scores: Sequence[Optional[torch.Tensor]],
                       gt_masks: Sequence[Optional[torch.Tensor]],
                       like: torch.Tensor) -> torch.Tensor:
        total = like.new_zeros((), dtype=torch.float32)
        for sample_scores, gt in zip(scores, gt_masks):
            if sample_scores is None or gt is None:
                continue
            share = F.adaptive_avg_pool2d(gt[:, None].float(),
                                          sample_scores.shape[-2:]).flatten(1)
            log_p = sample_scores.flatten(1).log_softmax(-1)
            # an empty target (all-zero mask) gives no pointing signal
            has_target = share.sum(-1) > 0
            picked = torch.logsumexp(
                log_p + share.clamp(min=1e-12).log(), dim=-1)
            total = total - picked[has_target].sum()
        return total * self.locator_loss_weight

    def forward_train(self, features: dict,
                      prompts: Sequence[torch.Tensor],
                      original_sizes: Sequence[Tuple[int, int]],
                      gt_masks: Sequence[Optional[torch.Tensor]]
                      ) -> Tuple[List[torch.Tensor], Optional[torch.Tensor]]:
        """Masks and the pointing loss from one locator pass per sample."""
        masks, scores = self._decode_all(features, prompts, original_sizes,
                                         same_graph=True)
        if not self.locator:
            return masks, None
        return masks, self._pointing_loss(scores, gt_masks,
                                          features['image_embed'])

    def forward(self, features: dict, prompts: Sequence[torch.Tensor],
                original_sizes: Sequence[Tuple[int, int]]
                ) -> List[torch.Tensor]:
        return self._decode_all(features, prompts, original_sizes)[0]

    def _decode_all(self, features, prompts, original_sizes,
                    same_graph: bool = False):
        """Per sample: logits at the original size and the locator scores
        (None without a locator, or without prompts unless ``same_graph``).

        ``same_graph`` (training): a sample without prompts decodes one zero
        prompt and returns its outputs sliced to zero rows, so every sample
        runs the same modules in the same order. ZeRO-3 gathers parameters
        by that order and DDP/ZeRO-2 reduce gradients by it: a rank whose
        batch has no [SEG] would otherwise hang ZeRO-3 or reorder ZeRO-2's
        sums.
        """
        high_res = self.project_high_res(features['high_res'])
        outputs, scores = [], []
        for i, (sample_prompts, size) in enumerate(zip(prompts,
                                                       original_sizes)):
            empty = sample_prompts.shape[0] == 0
            if empty and not same_graph:
                outputs.append(
                    features['image_embed'].new_zeros((0, *size)).float())
                scores.append(None)
                continue
            if empty:  # zero, and still on the [SEG] projector's graph
                sample_prompts = sample_prompts.sum(0, keepdim=True) * 0.0
            decoded = self.decode(features['image_embed'][i:i + 1],
                                  [h[i:i + 1] for h in high_res],
                                  sample_prompts)
            masks = postprocess_masks(decoded['low_res_masks'], size)
            located = decoded.get('locator_scores')
            if empty:
                masks = masks[:0]
                located = None if located is None else located[:0]
            outputs.append(masks)
            scores.append(located)
        return outputs, scores


def postprocess_masks(low_res: torch.Tensor,
                      size: Tuple[int, int]) -> torch.Tensor:
    """[n, 1, h, w] logits -> [n, H, W] fp32 logits at the original size."""
    return F.interpolate(
        low_res.float(), size=tuple(size), mode='bilinear',
        align_corners=False)[:, 0]


__all__ = ['SAM2MaskDecoder', 'postprocess_masks']
