"""Training-time speed-ups for the demo DiT and its text encoder that leave the model's function unchanged.

The exported model is run by WanPipeline and Kinema with the umT5 output zero-padded to 512 tokens and an
unmasked cross-attention, so training must compute that same function. What changes here is only how it is
computed (checked against the plain path by check_fast_dit.py):

- Compact text context. Every padding token is the same zero vector, so after the DiT's text projection
  (Linear → GELU → Linear, per token) and each cross-attention's to_k / norm_k / to_v (per token) all
  512 − n padding positions carry one identical key and value. Attention over them equals attention over a
  short context [n real tokens, a few padding slots] where each padding slot's logit gets + log(count it
  stands for / slots): softmax weights e^{s}·m instead of m copies of e^{s}. With prompts of ≤ ~16 tokens this
  turns the cross-attention's 512 keys (and the [B, 512, 192] key / value / text-projection activations of
  every layer, forward and backward) into 24. The biased attention runs in fp32 so log(m) is exact.
- RMSNorm in fp32. diffusers keeps norm_q / norm_k weights in fp32; under bf16 autocast torch.rms_norm then
  gets a bf16 input and an fp32 weight, warns ("Mismatch dtype … Cannot dispatch to fused implementation")
  and runs an unfused composite of ~7 kernels. The composite upcasts the input to fp32, so calling the fused
  kernel on input.float() and casting back gives the same values (bit-identical on the CPU check).
- RoPE tables in fp32. WanRotaryPosEmbed keeps cos/sin in float64 (off MPS), which promotes every rotary
  product of q and k (forward and backward) to float64 before rounding back to bf16. fp32 tables change the
  products by ~1e-7 relative, far below the bf16 rounding that follows.
- Prompts pre-tokenized on the device (PromptTable, TokenRows) and the umT5 attention mask built as the 4D
  mask the encoder would build itself: transformers' create_bidirectional_mask otherwise calls
  padding_mask.all() to decide whether the mask can be skipped, a host sync every step.

Shapes: ids [B, L] (L = the longest prompt of the table), lengths [B], text hidden [B, L, D],
compact context [B, W, D] with W = round_up(L + 1, 8), pad bias [B, 1, 1, W] fp32.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

TEXT_LEN = 512  # WanPipeline's max_sequence_length; Kinema pads to the same length


# ----------------------------------------------------------------------------------------------- DiT


class Fp32RMSNorm(torch.nn.RMSNorm):
    """torch.nn.RMSNorm whose input is upcast before the fused kernel (see the module docstring). Swapped in
    by class, so the parameters and state-dict keys are the original module's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wide = x.to(torch.promote_types(x.dtype, torch.float32))  # bf16 → fp32; fp32 / fp64 unchanged
        weight = None if self.weight is None else self.weight.to(wide.dtype)
        return F.rms_norm(wide, self.normalized_shape, weight, self.eps).to(x.dtype)


def _padded_cross_attention_class():
    from diffusers.models.transformers.transformer_wan import WanAttnProcessor

    class PaddedCrossAttention(WanAttnProcessor):
        """WanAttnProcessor for the text cross-attention that, while `bias` is set, attends over a compact
        context whose padding slots carry the log-multiplicity `bias` [B, 1, 1, W]; with `bias` None it is
        diffusers' processor unchanged (full 512-token contexts: sampling, evaluation)."""

        def __init__(self):
            super().__init__()
            self.bias: torch.Tensor | None = None

        def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
            bias = self.bias
            if bias is None or attn.add_k_proj is not None or encoder_hidden_states is None:
                return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb)
            if bias.shape[0] != hidden_states.shape[0] or bias.shape[-1] != encoder_hidden_states.shape[1]:
                raise ValueError(f"pad bias {list(bias.shape)} does not fit queries {list(hidden_states.shape)} / "
                                 f"context {list(encoder_hidden_states.shape)}")
            query = attn.norm_q(attn.to_q(hidden_states))  # [B, S, H·D]
            key = attn.norm_k(attn.to_k(encoder_hidden_states))  # [B, W, H·D]
            value = attn.to_v(encoder_hidden_states)
            out_dtype = query.dtype
            dtype = torch.promote_types(query.dtype, torch.float32)  # fp32 under bf16 autocast
            q, k, v = (t.unflatten(2, (attn.heads, -1)).transpose(1, 2).to(dtype) for t in (query, key, value))
            with torch.autocast(device_type=q.device.type, enabled=False):  # autocast would round bias to bf16
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(dtype))  # [B, H, S, D]
            out = out.transpose(1, 2).flatten(2).to(out_dtype)
            return attn.to_out[1](attn.to_out[0](out))

    return PaddedCrossAttention


def prepare_dit(dit, rope_fp32: bool = True) -> object:
    """Applies the function-preserving speed-ups to a WanTransformer3DModel in place and returns the shared
    cross-attention processor (set its `bias` around a call; `dit_forward` does). rope_fp32=False keeps the
    float64 RoPE tables (check_fast_dit.py --float64 uses it to show the other changes are exact)."""
    for module in dit.modules():
        if type(module) is torch.nn.RMSNorm:
            module.__class__ = Fp32RMSNorm
    if rope_fp32:
        rope = dit.rope
        rope.freqs_cos = rope.freqs_cos.float()
        rope.freqs_sin = rope.freqs_sin.float()
    processor = _padded_cross_attention_class()()
    for block in dit.blocks:
        block.attn2.set_processor(processor)
    dit._padded_cross_attention = processor
    return processor


def dit_forward(dit, x, timestep, context, bias=None):
    """The DiT's noise prediction; `bias` given: `context` is compact (see compact_context)."""
    processor = getattr(dit, "_padded_cross_attention", None)
    if bias is not None and processor is None:
        raise ValueError("a compact context needs prepare_dit() first")
    if processor is not None:
        processor.bias = bias
    try:
        return dit(hidden_states=x, timestep=timestep, encoder_hidden_states=context, return_dict=False)[0]
    finally:
        if processor is not None:
            processor.bias = None


def compact_width(max_tokens: int) -> int:
    """Context slots for prompts of up to max_tokens tokens: at least one padding slot, a multiple of 8."""
    return (max_tokens + 1 + 7) // 8 * 8


def pad_bias(lengths: torch.Tensor, width: int, total: int = TEXT_LEN) -> torch.Tensor:
    """[B, 1, 1, width] float64 (cast to the attention's dtype where used): 0 on the real tokens,
    log((total − n) / (width − n)) on each padding slot, so the width − n slots weigh as much as the
    total − n zero tokens of the full context."""
    pos = torch.arange(width, device=lengths.device)
    n = lengths.to(torch.float64).unsqueeze(1)  # [B, 1]
    log_m = torch.log((total - n) / (width - n))
    return torch.where(pos.unsqueeze(0) < lengths.unsqueeze(1), torch.zeros_like(log_m), log_m).view(-1, 1, 1, width)


def context_from(hidden: torch.Tensor, lengths: torch.Tensor, compact: bool):
    """(context, bias) from the encoder output [B, L, D]: positions past each prompt zeroed (as WanPipeline
    does), then padded to 512 tokens (bias None) or to the compact width (with its pad bias)."""
    keep = torch.arange(hidden.shape[1], device=hidden.device).unsqueeze(0) < lengths.unsqueeze(1)
    hidden = hidden * keep.unsqueeze(-1).to(hidden.dtype)
    if not compact:
        return F.pad(hidden, (0, 0, 0, TEXT_LEN - hidden.shape[1])), None
    width = compact_width(hidden.shape[1])
    return F.pad(hidden, (0, 0, 0, width - hidden.shape[1])), pad_bias(lengths, width)


def encode_text(encoder, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """umT5 encoder output [B, L, D] for padded ids [B, L], with the 4D mask transformers would build from
    the 2D one (built here without its `.all()` host sync)."""
    from transformers.masking_utils import create_bidirectional_mask

    mask = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0) < lengths.unsqueeze(1)  # [B, L] bool
    embeds = encoder.get_input_embeddings()(ids)
    mask4d = create_bidirectional_mask(config=encoder.config, inputs_embeds=embeds, attention_mask=mask,
                                       allow_is_bidirectional_skip=False)
    return encoder(inputs_embeds=embeds, attention_mask=mask4d).last_hidden_state


class TextToNoise(torch.nn.Module):
    """Text encoder + DiT as one module (DDP then all-reduces both, torch.compile sees one graph):
    (x_t [B, 16, T, H, W], timestep [B], ids [B, L], lengths [B]) → predicted ε − x0."""

    def __init__(self, dit, encoder, compact: bool):
        super().__init__()
        self.dit, self.encoder, self.compact = dit, encoder, compact

    def forward(self, x, timestep, ids, lengths):
        context, bias = context_from(encode_text(self.encoder, ids, lengths), lengths, self.compact)
        return dit_forward(self.dit, x, timestep, context, bias)


class Student(torch.nn.Module):
    """The distill stage's trainable DiT with its context: (x, timestep, context, bias) → v."""

    def __init__(self, dit):
        super().__init__()
        self.dit = dit

    def forward(self, x, timestep, context, bias=None):
        return dit_forward(self.dit, x, timestep, context, bias)


# ----------------------------------------------------------------------------------------------- prompts


class TokenRows:
    """Strings tokenized once: ids [S, L] (0-padded, L = longest, ≤ TEXT_LEN) and lengths [S] on the device."""

    def __init__(self, tok, strings: list[str], device):
        encoded = tok.encode_batch(strings)
        longest = min(max(len(e.ids) for e in encoded), TEXT_LEN)
        ids = torch.zeros(len(strings), longest, dtype=torch.long)
        lengths = torch.zeros(len(strings), dtype=torch.long)
        for i, e in enumerate(encoded):
            n = min(len(e.ids), TEXT_LEN)
            ids[i, :n] = torch.tensor(e.ids[:n])
            lengths[i] = n
        self.ids, self.lengths = ids.to(device), lengths.to(device)
        self.row = {s: i for i, s in enumerate(strings)}

    def take(self, rows: torch.Tensor):
        return self.ids[rows], self.lengths[rows]


class PromptTable:
    """Every prompt world.prompt_for can give each attribute combination, with its probability, tokenized
    once; sample() draws a batch's prompts on the device with the same distribution (and the CFG drop to "")
    without any host work."""

    def __init__(self, tok, device):
        import world

        self.combos = world.attribute_combos()
        self.index = {c: i for i, c in enumerate(self.combos)}
        choices = [world.prompt_choices(*c) for c in self.combos]
        strings = sorted({s for ch in choices for s in ch} | {""})
        self.tokens = TokenRows(tok, strings, device)
        width = max(len(ch) for ch in choices)
        rows = torch.zeros(len(choices), width, dtype=torch.long)
        cdf = torch.full((len(choices), width), 2.0, dtype=torch.float64)  # 2: never below a uniform draw
        count = torch.zeros(len(choices), dtype=torch.long)
        for c, ch in enumerate(choices):
            items = sorted(ch.items())
            total = sum(p for _, p in items)
            rows[c, :len(items)] = torch.tensor([self.tokens.row[s] for s, _ in items])
            cdf[c, :len(items)] = torch.tensor([p for _, p in items], dtype=torch.float64).cumsum(0) / total
            count[c] = len(items)
        self.rows, self.cdf, self.count = rows.to(device), cdf.float().to(device), count.to(device)
        self.empty = self.tokens.row[""]
        self.max_tokens = self.tokens.ids.shape[1]

    def combo_of(self, spec) -> int:
        return self.index[(spec.colour, spec.shape, spec.direction, spec.speed, spec.background)]

    def sample(self, combos: torch.Tensor, gen: torch.Generator, drop: float):
        """combos [B] → (ids [B, L], lengths [B]); each prompt "" with probability `drop`."""
        n = combos.shape[0]
        u = torch.rand(n, 1, device=combos.device, generator=gen)
        k = torch.searchsorted(self.cdf[combos], u, right=True).squeeze(1)
        k = torch.minimum(k, self.count[combos] - 1)
        rows = self.rows[combos, k]
        dropped = torch.rand(n, device=combos.device, generator=gen) < drop
        rows = torch.where(dropped, torch.full_like(rows, self.empty), rows)
        return self.tokens.take(rows)


@torch.no_grad()
def ema_update(ema: list[torch.Tensor], params: list[torch.Tensor], decay: float):
    """ema ← ema + (1 − decay)·(param − ema) over whole parameter lists (one foreach kernel per dtype group)."""
    torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - decay)
