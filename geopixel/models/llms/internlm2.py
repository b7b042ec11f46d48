"""InternLM2 causal LM, written for geopixel.

Parameter names follow the IXC-2.5 / GeoPixel checkpoints
(``model.tok_embeddings``, ``model.layers.{i}.attention.wqkv``,
``...feed_forward.w1/w2/w3``, ``model.norm``, ``output``), so released
weights load with a plain key table. Behaviour follows the reference:

* RMSNorm computed in fp32; SiLU-gated FFN; untied output layer;
* GQA with the packed ``wqkv`` projection grouped per KV head: for each of
  the ``num_key_value_heads`` groups the output rows hold
  ``num_heads / num_key_value_heads`` query heads, then one key and one
  value head;
* RoPE with the dynamic NTK rule above ``max_position_embeddings`` (computed
  per call; the reference mutates its cache once, a stateful quirk we do
  not copy);
* partial LoRA (``Plora_A/B``, only on image tokens) is not part of the
  model: the adapter wraps ``wqkv``, ``wo`` and ``w1/w2/w3`` with it
  (``partial_lora.py``), keeping the checkpoint names;
* attention through ``scaled_dot_product_attention``; a KV cache for
  generation; optional gradient checkpointing.
"""
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

KVCache = List[Tuple[torch.Tensor, torch.Tensor]]


@dataclass
class InternLM2Config:
    """Architecture hyper-parameters (the IXC-2.5 ``config.json`` names)."""
    vocab_size: int = 92544
    hidden_size: int = 4096
    intermediate_size: int = 14336
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int = 8
    rms_norm_eps: float = 1e-5
    rope_theta: float = 1e6
    rope_scaling: Optional[dict] = field(
        default_factory=lambda: dict(type='dynamic', factor=2.0))
    max_position_embeddings: int = 24576
    bias: bool = False
    pad_token_id: int = 0
    bos_token_id: int = 1
    eos_token_id: int = 2

    @classmethod
    def from_dict(cls, values: dict) -> 'InternLM2Config':
        """Keep only known keys (a HF ``config.json`` has many more)."""
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in values.items() if k in known})

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


class RMSNorm(nn.Module):

    def __init__(self, hidden_size: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x32 = x.to(torch.float32)
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class RotaryEmbedding(nn.Module):
    """RoPE cos/sin for given positions, with dynamic NTK scaling."""

    def __init__(self, config: InternLM2Config):
        super().__init__()
        self.dim = config.head_dim
        self.base = config.rope_theta
        self.max_position_embeddings = config.max_position_embeddings
        scaling = config.rope_scaling or {}
        self.dynamic_factor = (
            float(scaling.get('factor', 1.0))
            if scaling.get('type') == 'dynamic' else None)

    def inv_freq(self, seq_len: int, device) -> torch.Tensor:
        base = self.base
        if (self.dynamic_factor is not None
                and seq_len > self.max_position_embeddings):
            f = self.dynamic_factor
            base = base * ((f * seq_len / self.max_position_embeddings) -
                           (f - 1))**(self.dim / (self.dim - 2))
        steps = torch.arange(0, self.dim, 2, device=device).float()
        return 1.0 / (base**(steps / self.dim))

    def forward(self, positions: torch.Tensor, dtype):
        """cos/sin for ``positions`` [B, q]. Each sample's NTK base follows
        its own length (its last position + 1), so a sample padded into a
        batch gets the rotation it gets alone."""
        lengths = (positions.amax(1) + 1).tolist()
        inv_freq = torch.stack(
            [self.inv_freq(int(n), positions.device) for n in lengths])
        freqs = positions.float()[..., None] * inv_freq[:, None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype), emb.sin().to(dtype)


class InternLM2Attention(nn.Module):

    def __init__(self, config: InternLM2Config):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = config.head_dim
        self.groups = self.num_heads // self.num_kv_heads
        self.wqkv = nn.Linear(
            config.hidden_size,
            (self.num_heads + 2 * self.num_kv_heads) * self.head_dim,
            bias=config.bias)
        self.wo = nn.Linear(
            self.num_heads * self.head_dim, config.hidden_size,
            bias=config.bias)

    def forward(self, hidden, cos, sin, attn_mask, past=None):
        b, q_len, _ = hidden.shape
        qkv = self.wqkv(hidden)
        qkv = qkv.view(b, q_len, self.num_kv_heads, self.groups + 2,
                       self.head_dim)
        q = qkv[..., :self.groups, :].reshape(b, q_len, self.num_heads,
                                              self.head_dim)
        k = qkv[..., -2, :]
        v = qkv[..., -1, :]
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        cos, sin = cos[:, None], sin[:, None]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        present = (k, v)
        # GQA without materialising repeated keys/values (torch >= 2.5)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, enable_gqa=self.groups > 1)
        out = out.transpose(1, 2).reshape(b, q_len, -1)
        return self.wo(out), present


class InternLM2MLP(nn.Module):

    def __init__(self, config: InternLM2Config):
        super().__init__()
        h, i = config.hidden_size, config.intermediate_size
        self.w1 = nn.Linear(h, i, bias=False)
        self.w3 = nn.Linear(h, i, bias=False)
        self.w2 = nn.Linear(i, h, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class InternLM2DecoderLayer(nn.Module):

    def __init__(self, config: InternLM2Config):
        super().__init__()
        self.attention = InternLM2Attention(config)
        self.feed_forward = InternLM2MLP(config)
        self.attention_norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.ffn_norm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, hidden, cos, sin, attn_mask, past=None):
        attn, present = self.attention(
            self.attention_norm(hidden), cos, sin, attn_mask, past)
        hidden = hidden + attn
        hidden = hidden + self.feed_forward(self.ffn_norm(hidden))
        return hidden, present


def build_attention_mask(attention_mask: Optional[torch.Tensor], q_len: int,
                         past_len: int, batch: int, device) -> torch.Tensor:
    """Boolean [B, 1, q, past+q] mask: causal and hiding padded keys."""
    total = past_len + q_len
    q_pos = torch.arange(past_len, total, device=device)[:, None]
    k_pos = torch.arange(total, device=device)[None, :]
    mask = (k_pos <= q_pos)[None, None].expand(batch, 1, q_len, total)
    if attention_mask is not None:
        keys = attention_mask[:, None, None, :total].bool()
        mask = mask & keys
    # a fully masked row (a padded query) would give NaN: let it see itself
    diag = torch.zeros_like(mask)
    diag[..., torch.arange(q_len), torch.arange(past_len, total)] = True
    return mask | (diag & ~mask.any(-1, keepdim=True))


class InternLM2Model(nn.Module):

    def __init__(self, config: InternLM2Config):
        super().__init__()
        self.config = config
        self.tok_embeddings = nn.Embedding(config.vocab_size,
                                           config.hidden_size,
                                           config.pad_token_id)
        self.layers = nn.ModuleList(
            InternLM2DecoderLayer(config)
            for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.rotary = RotaryEmbedding(config)
        self.gradient_checkpointing = False

    def forward(self,
                inputs_embeds: torch.Tensor,
                attention_mask: Optional[torch.Tensor] = None,
                past_key_values: Optional[KVCache] = None,
                use_cache: bool = False,
                position_ids: Optional[torch.Tensor] = None):
        b, q_len, _ = inputs_embeds.shape
        past_len = 0 if not past_key_values else past_key_values[0][0].shape[2]
        device = inputs_embeds.device
        if position_ids is None:
            position_ids = torch.arange(
                past_len, past_len + q_len, device=device)[None].expand(b, -1)
        cos, sin = self.rotary(position_ids, inputs_embeds.dtype)
        mask = build_attention_mask(attention_mask, q_len, past_len, b,
                                    device)
        hidden = inputs_embeds
        presents = []
        for i, layer in enumerate(self.layers):
            past = past_key_values[i] if past_key_values else None
            if self.gradient_checkpointing and self.training:
                hidden, present = checkpoint(
                    layer, hidden, cos, sin, mask, past, use_reentrant=False)
            else:
                hidden, present = layer(hidden, cos, sin, mask, past)
            if use_cache:
                presents.append(present)
        hidden = self.norm(hidden)
        return hidden, (presents if use_cache else None)


class InternLM2ForCausalLM(nn.Module):
    """InternLM2 with its untied output layer (``output``)."""

    def __init__(self, config: InternLM2Config):
        super().__init__()
        self.config = config
        self.model = InternLM2Model(config)
        self.output = nn.Linear(config.hidden_size, config.vocab_size,
                                bias=False)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module, std: float = 0.02):
        """HF-style init: N(0, 0.02) weights, zero biases."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=std)
            if getattr(module, 'bias', None) is not None:
                nn.init.zeros_(module.bias)

    def forward(self,
                inputs_embeds: torch.Tensor,
                attention_mask: Optional[torch.Tensor] = None,
                past_key_values: Optional[KVCache] = None,
                use_cache: bool = False,
                position_ids: Optional[torch.Tensor] = None):
        hidden, presents = self.model(inputs_embeds, attention_mask,
                                      past_key_values, use_cache,
                                      position_ids)
        return dict(
            logits=self.output(hidden),
            hidden_states=hidden,
            past_key_values=presents)
