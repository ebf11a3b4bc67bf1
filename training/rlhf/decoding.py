"""Token-by-token decoding of a GPT-2 trunk over a static key/value cache, optionally replayed as a CUDA graph.

``sampling.generate`` decodes through ``transformers``' dynamic cache by default: every new token grows each
layer's keys and values by a concatenation and rebuilds the attention mask, a few hundred small kernels whose
launch cost, not the arithmetic, sets the pace on a GPU (at the gpt2-large shape about 58 ms per token for 64
rows, where reading the weights once takes about 0.3 ms; issue 15). Here the cache is allocated once for the
whole response (``(B, heads, Lq + T, head_dim)`` per layer), the new token's keys and values are written into
their column in place and attention reads the whole buffer under a key mask, so every step has the same shapes
and touches the same memory. That makes the step capturable: on CUDA, ``GraphedStep`` records it once as a
CUDA graph and replays it for every token (one launch per token instead of hundreds).

The arithmetic is GPT-2's own (``models._attend``'s attention, the block's modules), so the hidden states equal
the dynamic path's within fp32 rounding (tests/training/rlhf/test_decoding.py) and the samples are the same
for the same generator. Only plain GPT-2 trunks qualify (``static_decodable``); others, and trunks whose blocks
FSDP shards (their weights exist whole only inside the block's own call), decode through ``transformers``.

Decoders are kept per trunk and shape (``decoders_for``), so a training run captures its graph once: the graph
reads the trained weights where they live (the optimiser updates them in place; under autocast the low-precision
copies are made inside the graph, from the current weights, on every replay). The key in the cache includes every
parameter's address, so a model whose weights were moved or replaced gets a new decoder, never a stale graph.
"""

from __future__ import annotations

import warnings
import weakref

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import PreTrainedModel

from training.rlhf.config import DECODINGS
from training.rlhf.models import packable_gpt2


def static_decodable(lm: PreTrainedModel) -> bool:
    """True for a GPT-2 trunk this module decodes exactly: no cross-attention, no active dropout, no block
    sharded by FSDP (a DTensor parameter)."""
    if not packable_gpt2(lm):
        return False
    if lm.training and any(isinstance(m, nn.Dropout) and m.p > 0 for m in lm.modules()):
        return False
    return not any(type(p).__name__ == "DTensor" for p in lm.parameters())


def resolve_decoding(decoding: str, lm: PreTrainedModel, device: torch.device) -> str:
    """The decoding a ``generate`` call uses: ``auto`` is ``cuda-graph`` on CUDA and ``static`` elsewhere for a
    trunk ``static_decodable`` accepts, else ``dynamic``; an explicit static mode on a trunk it cannot decode
    falls back to ``dynamic`` too (the same samples, only slower)."""
    if decoding not in DECODINGS:
        raise ValueError(f"decoding must be one of {', '.join(DECODINGS)}, not {decoding!r}")
    if decoding == "dynamic" or not static_decodable(lm):
        return "dynamic"
    if decoding == "auto":
        return "cuda-graph" if device.type == "cuda" else "static"
    if decoding == "cuda-graph" and device.type != "cuda":
        return "static"
    return decoding


class StaticGPT2Decoder:
    """A GPT-2 trunk's decoding state for ``batch`` rows of at most ``length`` tokens (query + response)."""

    def __init__(self, lm: PreTrainedModel, batch: int, length: int, device: torch.device) -> None:
        self.transformer = lm.transformer
        self.blocks = list(self.transformer.h)
        attn = self.blocks[0].attn
        self.heads, self.head_dim, self.width = attn.num_heads, attn.head_dim, attn.split_size
        self.batch, self.length, self.device = batch, length, device
        self.keys: list[Tensor] = []
        self.values: list[Tensor] = []
        # (B, 1, 1, length): which cache columns hold a real token (left padding and unwritten columns do not).
        self.key_real = torch.zeros(batch, 1, 1, length, dtype=torch.bool, device=device)

    def _allocate(self, dtype: torch.dtype) -> None:
        if self.keys and self.keys[0].dtype == dtype:
            return
        shape = (self.batch, self.heads, self.length, self.head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=self.device) for _ in self.blocks]
        self.values = [torch.zeros(shape, dtype=dtype, device=self.device) for _ in self.blocks]

    def _split(self, x: Tensor) -> Tensor:
        B, L, _ = x.shape
        return x.view(B, L, self.heads, self.head_dim).transpose(1, 2)  # (B, H, L, hd)

    def prefill(self, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor) -> Tensor:
        """Run the (left-padded) queries, (B, Lq), filling columns ``0 .. Lq-1``; the last column's final hidden
        state, (B, d). A pad position attends to itself only (never read; no all-masked softmax row)."""
        B, Lq = input_ids.shape
        real = attention_mask.bool()
        self.key_real.zero_()
        self.key_real[:, 0, 0, :Lq] = real
        index = torch.arange(Lq, device=self.device)
        causal = index[None, :] <= index[:, None]  # (Lq, Lq)
        allowed = (causal & real[:, None, :]) | torch.eye(Lq, dtype=torch.bool, device=self.device)  # (B, Lq, Lq)
        allowed = allowed.unsqueeze(1)  # (B, 1, Lq, Lq)
        hidden = self.transformer.wte(input_ids) + self.transformer.wpe(position_ids)  # (B, Lq, d)
        for i, block in enumerate(self.blocks):
            attn = block.attn
            q, k, v = attn.c_attn(block.ln_1(hidden)).split(self.width, dim=2)
            q, k, v = self._split(q), self._split(k), self._split(v)
            self._allocate(k.dtype)
            self.keys[i][:, :, :Lq] = k
            self.values[i][:, :, :Lq] = v
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=attn.scaling)  # (B, H, Lq, hd)
            hidden = hidden + attn.c_proj(out.transpose(1, 2).reshape(B, Lq, self.width))
            hidden = hidden + block.mlp(block.ln_2(hidden))
        return self.transformer.ln_f(hidden[:, -1])

    def open_column(self, column: Tensor) -> None:
        """Mark cache column ``column`` (a 1-element long tensor) as a real key for every row, before ``step``."""
        self.key_real.index_fill_(-1, column, True)

    def step(self, token: Tensor, position: Tensor, column: Tensor) -> Tensor:
        """One token per row, (B, 1) ids at (B, 1) positions, written to cache column ``column`` (a 1-element
        long tensor, so a replayed graph reads it from memory); the final hidden state, (B, d). Shapes and
        addresses never change between calls."""
        B = token.shape[0]
        hidden = self.transformer.wte(token) + self.transformer.wpe(position)  # (B, 1, d)
        for i, block in enumerate(self.blocks):
            attn = block.attn
            q, k, v = attn.c_attn(block.ln_1(hidden)).split(self.width, dim=2)
            self.keys[i].index_copy_(2, column, self._split(k).to(self.keys[i].dtype))
            self.values[i].index_copy_(2, column, self._split(v).to(self.values[i].dtype))
            out = F.scaled_dot_product_attention(
                self._split(q).to(self.keys[i].dtype), self.keys[i], self.values[i], attn_mask=self.key_real,
                scale=attn.scaling,
            )  # (B, H, 1, hd)
            hidden = hidden + attn.c_proj(out.transpose(1, 2).reshape(B, 1, self.width))
            hidden = hidden + block.mlp(block.ln_2(hidden))
        return self.transformer.ln_f(hidden[:, -1])


class GraphedStep:
    """``decoder.step`` recorded once as a CUDA graph over fixed input buffers, then replayed per token.

    Captured under the caller's autocast (if any) with autocast's weight cache off, as CUDA graphs require: the
    low-precision weight copies are recomputed inside the graph from the current fp32 weights on every replay.
    """

    def __init__(self, decoder: StaticGPT2Decoder) -> None:
        device = decoder.device
        self.decoder = decoder
        self.token = torch.zeros(decoder.batch, 1, dtype=torch.long, device=device)
        self.position = torch.zeros(decoder.batch, 1, dtype=torch.long, device=device)
        # Warm-up and capture write their keys to the last column, which no key mask has opened yet: the real
        # step that reaches it overwrites them first.
        self.column = torch.full((1,), decoder.length - 1, dtype=torch.long, device=device)
        amp = torch.is_autocast_enabled(device.type)
        amp_dtype = torch.get_autocast_dtype(device.type) if amp else None

        def run() -> Tensor:
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp, cache_enabled=False):
                return decoder.step(self.token, self.position, self.column)

        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            for _ in range(2):  # lazy initialisation (cuBLAS handles, kernels) outside the capture
                run()
        torch.cuda.current_stream(device).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.hidden = run()

    def __call__(self, token: Tensor, position: Tensor, column: Tensor) -> Tensor:
        self.token.copy_(token)
        self.position.copy_(position)
        self.column.copy_(column)
        self.graph.replay()
        return self.hidden


_DECODERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class KeptDecoders:
    """One ``generate`` shape's decoders, one per row chunk, and their graphs once captured."""

    def __init__(self, lm: PreTrainedModel, chunk_rows: tuple[int, ...], length: int, device: torch.device,
                 graphed: bool) -> None:
        self.decoders = [StaticGPT2Decoder(lm, rows, length, device) for rows in chunk_rows]
        self.graphed = graphed  # replay each step as a CUDA graph
        self.graphs: list[GraphedStep | None] = [None] * len(chunk_rows)
        self.graph_error: str | None = None  # set when a capture failed: these decoders then run eagerly

    def step(self, chunk: int, token: Tensor, position: Tensor, column: Tensor) -> Tensor:
        """Chunk ``chunk``'s step, through its graph when these decoders are ``graphed`` (captured on first use). A capture that
        fails (a driver or kernel that cannot be captured) leaves a warning and the eager step, which gives the
        same values: a rollout never fails for want of a graph."""
        decoder = self.decoders[chunk]
        if not self.graphed or self.graph_error is not None:
            return decoder.step(token, position, column)
        if self.graphs[chunk] is None:
            try:
                self.graphs[chunk] = GraphedStep(decoder)
            except RuntimeError as error:  # torch raises RuntimeError (or a subclass) for capture failures
                self.graph_error = f"{type(error).__name__}: {error}"
                warnings.warn(f"decoding: CUDA graph capture failed, decoding eagerly over the static cache instead "
                              f"({self.graph_error})", RuntimeWarning, stacklevel=2)
                return decoder.step(token, position, column)
        return self.graphs[chunk](token, position, column)


def decoders_for(lm: PreTrainedModel, chunk_rows: tuple[int, ...], length: int, device: torch.device,
                 graphed: bool) -> KeptDecoders:
    """The trunk's decoders for this shape (rows per chunk, tokens), kept between calls. A trunk keeps one
    shape at a time (the caches hold memory); the key holds every parameter's address and the autocast dtype."""
    amp = torch.is_autocast_enabled(device.type)
    key = (
        chunk_rows, length, str(device), graphed, amp and torch.get_autocast_dtype(device.type),
        hash(tuple(p.data_ptr() for p in lm.parameters())),
    )
    kept = _DECODERS.get(lm)
    if kept is None or kept[0] != key:
        kept = (key, KeptDecoders(lm, chunk_rows, length, device, graphed))
        _DECODERS[lm] = kept
    return kept[1]


def forget_decoders(lm: PreTrainedModel | None = None) -> None:
    """Drop the kept decoders (and their caches and graphs) of ``lm``, or of every trunk."""
    if lm is None:
        _DECODERS.clear()
    else:
        _DECODERS.pop(lm, None)
