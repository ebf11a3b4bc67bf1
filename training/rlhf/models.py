"""Model building and I/O: any Hugging Face causal LM (hub id or local folder), a tiny GPT-2 for
tests, the policy with its value head, and the reward model.

Every model is used with dropout off (2019: ``do_dropout=False`` everywhere). Folders written by
``save_pretrained`` load through ``AutoModelForCausalLM.from_pretrained``, the same path as a hub id.
Assumption: the LM's logits are ``get_output_embeddings()(last_hidden_state)`` (true for GPT-2,
Llama, Mistral, Qwen; not for models with logit soft-capping).
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, PreTrainedModel

from training.rlhf.tokenizer import ByteTokenizer, Tokenizer, load_tokenizer

TINY = "tiny"
META_FILE = "rlhf_model.json"
VALUE_HEAD_FILE = "value_head.safetensors"
REWARD_HEAD_FILE = "reward_head.safetensors"
VALUE_MODEL_DIR = "value_model"
CHECKPOINT_POLICY_DIR = "policy"  # where a PPO checkpoint keeps its policy (see ppo.py)
READOUTS = ("last", "mean", "eot")  # where RewardModel reads its reward (see RewardModel)


# --- language models ---------------------------------------------------------------------------


def build_tiny(
    seed: int = 0, n_layer: int = 2, n_embd: int = 64, n_head: int = 4, n_positions: int = 256
) -> tuple[PreTrainedModel, ByteTokenizer]:
    """A randomly initialised GPT-2 (about 125k parameters by default) and its byte tokenizer.

    Same ``seed`` gives the same weights, so a run can rebuild its reference policy.
    """
    tokenizer = ByteTokenizer()
    config = GPT2Config(
        vocab_size=tokenizer.vocab_size,
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        # GPT-2's tanh GELU, computed by one fused kernel instead of five Python-level ops.
        activation_function="gelu_pytorch_tanh",
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        lm = GPT2LMHeadModel(config)
    return disable_dropout(lm), tokenizer


def load_lm(name_or_path: str | Path, dtype: torch.dtype | None = None) -> tuple[PreTrainedModel, Tokenizer]:
    """Load a causal LM and its tokenizer: ``"tiny"`` (or ``"tiny:<seed>"``), a hub id, or a folder."""
    name = str(name_or_path)
    if name == TINY or name.startswith(TINY + ":"):
        seed = int(name.split(":", 1)[1]) if ":" in name else 0
        lm, tokenizer = build_tiny(seed=seed)
        return lm.to(dtype) if dtype is not None else lm, tokenizer
    lm = AutoModelForCausalLM.from_pretrained(name, dtype=dtype or torch.float32)
    return disable_dropout(lm), load_tokenizer(name)


def disable_dropout(model: nn.Module) -> nn.Module:
    """Zero every dropout probability and put the model in eval mode (gradients still flow)."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    config = getattr(model, "config", None)
    for key, value in vars(config).items() if config is not None else ():
        if isinstance(value, float) and (key.endswith("pdrop") or key.endswith("dropout")):
            setattr(config, key, 0.0)
    return model.eval()


def positions_from_mask(attention_mask: Tensor) -> Tensor:
    """Positions that pads do not advance: ``cumsum(mask) - 1`` floored at 0. (B, L) -> (B, L)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def hidden_size(lm: PreTrainedModel) -> int:
    return int(lm.get_input_embeddings().embedding_dim)


_CACHE_KWARGS = ("past_key_values", "past_key_value", "layer_past")


def transformer_blocks(lm: PreTrainedModel) -> nn.ModuleList:
    """The LM's list of transformer blocks (GPT-2 ``transformer.h``, Llama-style ``model.layers``)."""
    base = lm.base_model
    for name in ("h", "layers", "blocks"):
        blocks = getattr(base, name, None)
        if isinstance(blocks, nn.ModuleList):
            return blocks
    raise ValueError(f"gradient checkpointing: no list of transformer blocks found on {type(base).__name__}")


def enable_gradient_checkpointing(lm: PreTrainedModel) -> PreTrainedModel:
    """Recompute each block's activations in the backward pass instead of keeping them (memory for compute:
    about one more forward per step). Applies only where gradients flow and no key/value cache is in play, so
    no-grad rollouts and cached scoring are unchanged; the packed GPT-2 reward path checkpoints its own layers.
    Values and gradients are the same as without (tested). HF's own switch is not used: it needs train mode
    and turns the generation cache off."""
    for block in transformer_blocks(lm):
        if getattr(block, "_rlhf_checkpointed", False):
            continue
        forward = block.forward

        def checkpointed(*args, _forward=forward, **kwargs):
            cached = kwargs.get("use_cache") or any(kwargs.get(name) is not None for name in _CACHE_KWARGS)
            if not torch.is_grad_enabled() or cached:
                return _forward(*args, **kwargs)
            return torch.utils.checkpoint.checkpoint(_forward, *args, use_reentrant=False, **kwargs)

        block.forward = checkpointed
        block._rlhf_checkpointed = True
    lm._rlhf_gradient_checkpointing = True
    return lm


def trunk_forward(
    lm: PreTrainedModel, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor | None = None, **kwargs
):
    """The LM's base transformer (no LM head); ``.last_hidden_state`` is post final norm, (B, L, d).

    Pads are masked as keys and do not advance positions (ALGORITHMS.md §2.12).
    """
    if position_ids is None:
        position_ids = positions_from_mask(attention_mask)
    kwargs.setdefault("use_cache", False)  # a cache only where the caller decodes with it (not kept by default)
    return lm.base_model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **kwargs)


def response_logits(lm: PreTrainedModel, input_ids: Tensor, attention_mask: Tensor, response_start: int) -> Tensor:
    """Raw next-token logits for the tokens ``input_ids[:, response_start:]``, (B, L) -> (B, T, V)."""
    hidden = trunk_forward(lm, input_ids, attention_mask).last_hidden_state[:, response_start - 1 : -1]
    return lm.get_output_embeddings()(hidden)


def freeze_untied_output_embeddings(lm: PreTrainedModel) -> None:
    """A trunk used only for scalar heads never uses an untied LM head; freeze it (DDP needs every
    trainable parameter to receive a gradient)."""
    out = lm.get_output_embeddings()
    if out is not None and out.weight is not lm.get_input_embeddings().weight:
        out.weight.requires_grad_(False)


def save_lm(lm: PreTrainedModel, tokenizer: Tokenizer, folder: str | Path) -> None:
    """``save_pretrained`` (safetensors) for the LM and its tokenizer into ``folder``."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    lm.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(folder)


# --- reward model ------------------------------------------------------------------------------


class RewardModel(nn.Module):
    """LM trunk + scalar head read at the last real token of query+response (2019 ``rewards.py``).

    ``reward = gain * head(h_last) + bias``; gain and bias are buffers saved with the weights and set
    by normalisation, never by the optimiser. The head starts at N(0, 1/sqrt(d+1)) with bias 0.

    ``readout="mean"`` (not in the papers, for small trunks whose last token cannot summarise the
    response): ``reward = gain * mean_t head(h_t) + bias`` over the response's real tokens t. An empty
    response falls back to the head at the query's last real token, as "last" reads it. The readout is
    saved with the weights.

    ``readout="eot"`` (2020 ``reward_model.py``): the response ends in the end-of-text token, appended after its
    last real token when it does not already end in one (a full-length response is read at its last token, as
    2020 reads one that never reached EOS); the head reads that token. ``score``/``score_k`` append it, so
    texts stored without their EOS are scored as 2020 scored them.
    """

    def __init__(self, lm: PreTrainedModel, head_seed: int = 0, readout: str = "last") -> None:
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        self.readout = readout
        eos = getattr(lm.config, "eos_token_id", None)
        if readout == "eot" and not isinstance(eos, int):
            raise ValueError("readout 'eot' needs an LM whose config names one eos_token_id")
        self.eos_token_id = eos
        self.lm = disable_dropout(lm)
        freeze_untied_output_embeddings(self.lm)
        d = hidden_size(lm)
        self.head = nn.Linear(d, 1)
        generator = torch.Generator().manual_seed(head_seed)
        with torch.no_grad():
            weight = torch.randn(self.head.weight.shape, generator=generator) / math.sqrt(d + 1)
            self.head.weight.copy_(weight)
            self.head.bias.zero_()
        self.head.to(next(lm.parameters()).dtype)
        self.register_buffer("gain", torch.ones(()))
        self.register_buffer("bias", torch.zeros(()))

    def per_token(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Normalised head output at every position, (B, L) -> (B, L); used by a separate value model."""
        hidden = trunk_forward(self.lm, input_ids, attention_mask).last_hidden_state  # (B, L, d)
        return self.gain * self.head(hidden).squeeze(-1).float() + self.bias

    def raw(self, input_ids: Tensor, attention_mask: Tensor, response_start: int | None = None) -> Tensor:
        """Head output before normalisation, (B, L) -> (B,): at the last real token of each row
        ("last"), or averaged over the real tokens of ``input_ids[:, response_start:]`` ("mean",
        which needs ``response_start``; "last" ignores it)."""
        if self.readout == "mean" and response_start is None:
            raise ValueError("readout 'mean' needs response_start (where the response begins)")
        hidden = trunk_forward(self.lm, input_ids, attention_mask).last_hidden_state  # (B, L, d)
        L = attention_mask.shape[-1]
        positions = torch.arange(L, device=attention_mask.device).expand_as(attention_mask)  # (B, L)
        last = torch.where(attention_mask.bool(), positions, torch.zeros_like(positions)).amax(-1)  # (B,)
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        if self.readout != "mean":  # "last", and "eot" on rows that end in the eos token
            return self.head(hidden[rows, last]).squeeze(-1).float()
        per = self.head(hidden).squeeze(-1).float()  # (B, L)
        return _masked_mean(per[:, response_start:], attention_mask[:, response_start:], per[rows, last])

    def forward(self, input_ids: Tensor, attention_mask: Tensor, response_start: int | None = None) -> Tensor:
        """Normalised rewards, (B, L) -> (B,); ``response_start`` as for ``raw``."""
        return self.gain * self.raw(input_ids, attention_mask, response_start) + self.bias

    def score(self, queries: Tensor, query_mask: Tensor, responses: Tensor, response_mask: Tensor) -> Tensor:
        """Rewards of left-padded queries (B, Lq) joined to right-padded responses (B, Lr) -> (B,).

        This is the ``RewardFn`` signature the PPO trainer calls.
        """
        responses, response_mask = self._with_eot(responses, response_mask)
        ids = torch.cat([queries, responses], dim=1)
        mask = torch.cat([query_mask, response_mask], dim=1).long()
        return self(ids, mask, response_start=queries.shape[1])

    def score_k(self, queries: Tensor, query_mask: Tensor, responses: Tensor, response_mask: Tensor) -> Tensor:
        """Rewards of K responses per query, with the query's forward pass shared by all K.

        queries, query_mask: (B, Lq) left-padded; responses, response_mask: (B, K, Lr) right-padded.
        Returns (B, K), equal (up to float rounding, gradients included) to ``score`` on each
        query+response row. A comparison costs Lq + K*Lr token positions instead of K*(Lq + Lr).
        GPT-2 trunks take the packed path (``packed_gpt2_raw``: no key/value copies, all-pad columns
        trimmed, the last layer only at the read tokens); other LMs share the query's key/value cache.
        """
        responses, response_mask = self._with_eot(responses, response_mask)
        if packable_gpt2(self.lm):
            raw = packed_gpt2_raw(
                self.lm, self.head, queries, query_mask, responses, response_mask, readout=self.readout
            )
            return self.gain * raw + self.bias
        return self.score_k_cached(queries, query_mask, responses, response_mask)

    def score_k_cached(self, queries: Tensor, query_mask: Tensor, responses: Tensor, response_mask: Tensor) -> Tensor:
        """``score_k`` for any LM: the query runs once and its key/value cache is repeated K times."""
        responses, response_mask = self._with_eot(responses, response_mask)
        B, K, Lr = responses.shape
        query_out = trunk_forward(self.lm, queries, query_mask, use_cache=True)
        cache = query_out.past_key_values
        cache.batch_repeat_interleave(K)  # (B*K, ...) keys and values, still on the autograd graph
        mask = torch.cat(
            [query_mask.long().repeat_interleave(K, dim=0), response_mask.reshape(B * K, Lr).long()], dim=1
        )  # (B*K, Lq + Lr)
        position_ids = positions_from_mask(mask)[:, -Lr:]  # (B*K, Lr)
        hidden = trunk_forward(
            self.lm, responses.reshape(B * K, Lr), mask, position_ids=position_ids, past_key_values=cache
        ).last_hidden_state  # (B*K, Lr, d)
        # The last real token is in the response, or (empty response) the query's last token.
        n_real = response_mask.reshape(B * K, Lr).long().sum(-1)  # (B*K,)
        rows = torch.arange(B * K, device=hidden.device)
        from_response = hidden[rows, (n_real - 1).clamp(min=0)]  # (B*K, d)
        from_query = query_out.last_hidden_state[:, -1].repeat_interleave(K, dim=0)  # (B*K, d)
        if self.readout == "mean":
            per = self.head(hidden).squeeze(-1).float()  # (B*K, Lr)
            fallback = self.head(from_query).squeeze(-1).float()  # (B*K,)
            raw = _masked_mean(per, response_mask.reshape(B * K, Lr), fallback)
            return (self.gain * raw + self.bias).view(B, K)
        picked = torch.where((n_real > 0).unsqueeze(-1), from_response, from_query)
        raw = self.head(picked).squeeze(-1).float()  # (B*K,)
        return (self.gain * raw + self.bias).view(B, K)

    def _with_eot(self, responses: Tensor, response_mask: Tensor) -> tuple[Tensor, Tensor]:
        """For ``readout="eot"``: each right-padded response (..., Lr) with the eos token after its last real
        token, unless it ends in one already or has no room; other readouts get the inputs back."""
        if self.readout != "eot":
            return responses, response_mask
        return append_eot(responses, response_mask, self.eos_token_id)

    def set_normalization(self, gain: float, bias: float) -> None:
        self.gain.fill_(gain)
        self.bias.fill_(bias)

    def save_pretrained(self, folder: str | Path, tokenizer: Tokenizer) -> None:
        """LM via ``save_pretrained`` plus ``reward_head.safetensors`` (head, gain, bias)."""
        save_lm(self.lm, tokenizer, folder)
        tensors = {
            "head.weight": self.head.weight.detach().contiguous(),
            "head.bias": self.head.bias.detach().contiguous(),
            "gain": self.gain.detach().contiguous(),
            "bias": self.bias.detach().contiguous(),
        }
        save_file({k: v.cpu() for k, v in tensors.items()}, str(Path(folder) / REWARD_HEAD_FILE))
        (Path(folder) / META_FILE).write_text(json.dumps({"kind": "reward_model", "readout": self.readout}))

    @classmethod
    def from_pretrained(cls, folder: str | Path, dtype: torch.dtype | None = None) -> tuple[RewardModel, Tokenizer]:
        """Load a folder written by ``save_pretrained``; one saved without a readout reads "last"."""
        lm, tokenizer = load_lm(folder, dtype=dtype)
        meta_path = Path(folder) / META_FILE
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        model = cls(lm, readout=meta.get("readout", "last"))
        tensors = load_file(str(Path(folder) / REWARD_HEAD_FILE))
        with torch.no_grad():
            model.head.weight.copy_(tensors["head.weight"])
            model.head.bias.copy_(tensors["head.bias"])
            model.set_normalization(float(tensors["gain"]), float(tensors["bias"]))
        return model, tokenizer


def append_eot(responses: Tensor, response_mask: Tensor, eos_token_id: int) -> tuple[Tensor, Tensor]:
    """Right-padded responses (..., Lr) with ``eos_token_id`` written after the last real token of each row
    that does not end in it and has a pad position left; the mask grows to match. A row already ending in
    eos, or full, is unchanged (2020 reads a full row at its last token)."""
    mask = response_mask.long()
    n_real = mask.sum(-1)  # (...,)
    Lr = responses.shape[-1]
    last = responses.gather(-1, (n_real - 1).clamp(min=0).unsqueeze(-1)).squeeze(-1)
    add = (n_real < Lr) & ((n_real == 0) | (last != eos_token_id))  # (...,)
    at = torch.nn.functional.one_hot(n_real.clamp(max=Lr - 1), Lr).bool() & add.unsqueeze(-1)  # (..., Lr)
    responses = torch.where(at, torch.full_like(responses, eos_token_id), responses)
    return responses, (mask.bool() | at).to(response_mask.dtype)


def _masked_mean(values: Tensor, mask: Tensor, empty: Tensor) -> Tensor:
    """Mean of ``values`` (..., L) over ``mask``'s real positions; ``empty`` (...) where none is real."""
    weights = mask.to(values.dtype)
    count = weights.sum(-1)
    mean = (values * weights).sum(-1) / count.clamp(min=1)
    return torch.where(count > 0, mean, empty)


def packable_gpt2(lm: PreTrainedModel) -> bool:
    """True for a GPT-2 trunk whose attention ``packed_gpt2_raw`` reproduces (no cross-attention, no
    eager-only upcast reordering)."""
    config = lm.config
    return (
        config.model_type == "gpt2"
        and not getattr(config, "add_cross_attention", False)
        and not getattr(config, "reorder_and_upcast_attn", False)
        and hasattr(lm, "transformer")
    )


def packed_gpt2_raw(
    lm: PreTrainedModel,
    head: nn.Linear,
    queries: Tensor,
    query_mask: Tensor,
    responses: Tensor,
    response_mask: Tensor,
    readout: str = "last",
) -> Tensor:
    """Raw head outputs of K responses per query through a GPT-2 trunk, (B, K); shapes as ``score_k``.

    Each comparison is one packed row ``[query, response_1, ..., response_K]``: a response attends to
    the query's real tokens and causally to itself, never to another response, with positions that
    continue from the query's real tokens, so every value equals the one-row-per-sample forward pass.
    Columns that are padding in every row are dropped first (left of the queries, right of the
    responses). Only the read token of each response (its last real one, or the query's last for an
    empty response) goes through the last layer's query projection, attention output, MLP, final
    norm and head; the other positions only supply that layer's keys and values. No LM logits.
    ``readout="mean"`` reads every response position instead (plus the query's last, for empty
    responses) and returns the head's mean over each response's real tokens.
    """
    B, K, Lr = responses.shape
    transformer = lm.transformer
    device = queries.device
    query_mask, response_mask = query_mask.bool(), response_mask.bool()
    # 1. Trim all-pad columns (one host sync; positions come from the masks, so values are unchanged).
    q_cols = query_mask.any(0).nonzero()
    q_start = int(q_cols[0]) if q_cols.numel() else queries.shape[1] - 1
    n_resp = response_mask.sum(-1)  # (B, K)
    r_len = max(int(n_resp.max()), 1)
    queries, query_mask = queries[:, q_start:], query_mask[:, q_start:]
    responses, response_mask = responses[:, :, :r_len], response_mask[:, :, :r_len]
    Lq, Lr = queries.shape[1], r_len
    S = Lq + K * Lr

    # 2. Packed ids, positions and the (B, 1, S, S) attention mask.
    ids = torch.cat([queries, responses.reshape(B, K * Lr)], 1)  # (B, S)
    n_query = query_mask.sum(-1, keepdim=True)  # (B, 1)
    positions = torch.cat(
        [
            positions_from_mask(query_mask),
            (n_query + torch.arange(Lr, device=device)).repeat(1, K),
        ],
        1,
    )  # (B, S)
    segment = torch.cat(
        [torch.zeros(Lq, dtype=torch.long, device=device), torch.arange(1, K + 1, device=device).repeat_interleave(Lr)]
    )  # (S,)
    index = torch.arange(S, device=device)
    structure = (index[None, :] <= index[:, None]) & ((segment[None, :] == 0) | (segment[None, :] == segment[:, None]))
    key_real = torch.cat([query_mask, response_mask.reshape(B, K * Lr)], 1)  # (B, S)
    # A pad row attends to itself only: never read, and never an all-masked (NaN) softmax row.
    allowed = (structure & key_real[:, None, :]) | torch.eye(S, dtype=torch.bool, device=device)  # (B, S, S)

    # 3. Read tokens: the response's last real token, else the query's last column ("last"); or the
    #    query's last column then every response column ("mean"), (B, R).
    if readout == "mean":
        read = torch.arange(Lq - 1, S, device=device).expand(B, S - Lq + 1)  # (B, 1 + K*Lr)
    else:
        read = torch.where(n_resp > 0, Lq + torch.arange(K, device=device) * Lr + n_resp - 1, Lq - 1)  # (B, K)
    R = read.shape[1]
    rows = torch.arange(B, device=device).unsqueeze(-1)  # (B, 1)

    hidden = transformer.wte(ids) + transformer.wpe(positions)  # (B, S, d)
    blocks = list(transformer.h)
    checkpointed = getattr(lm, "_rlhf_gradient_checkpointing", False) and torch.is_grad_enabled()
    for block in blocks[:-1]:
        if checkpointed:
            hidden = torch.utils.checkpoint.checkpoint(_packed_layer, block, hidden, allowed, use_reentrant=False)
        else:
            hidden = _packed_layer(block, hidden, allowed)

    # 4. Last layer: keys and values everywhere, the rest at the read tokens only.
    block = blocks[-1]
    attn = block.attn
    d = attn.split_size
    normed = block.ln_1(hidden)  # (B, S, d)
    weight, bias = attn.c_attn.weight, attn.c_attn.bias  # Conv1D: (d, 3d), (3d,)
    kv = torch.addmm(bias[d:], normed.reshape(B * S, d), weight[:, d:]).view(B, S, 2 * d)
    k, v = kv.split(d, dim=2)
    picked = hidden[rows, read]  # (B, R, d)
    q = torch.addmm(bias[:d], normed[rows, read].reshape(B * R, d), weight[:, :d]).view(B, R, d)
    out = _attend(attn, q, k, v, allowed[rows, read].unsqueeze(1))  # mask (B, 1, R, S)
    picked = picked + attn.c_proj(out)
    picked = picked + block.mlp(block.ln_2(picked))
    values = head(transformer.ln_f(picked)).squeeze(-1).float()  # (B, R)
    if readout != "mean":
        return values  # (B, K)
    per = values[:, 1:].view(B, K, Lr)
    return _masked_mean(per, response_mask, values[:, :1].expand(B, K))  # (B, K)


def _packed_layer(block: nn.Module, hidden: Tensor, allowed: Tensor) -> Tensor:
    """One GPT-2 block over packed rows (attention restricted by ``allowed``, (B, S, S))."""
    attn = block.attn
    q, k, v = attn.c_attn(block.ln_1(hidden)).split(attn.split_size, dim=2)
    out = _attend(attn, q, k, v, allowed.unsqueeze(1))
    hidden = hidden + attn.c_proj(out)
    return hidden + block.mlp(block.ln_2(hidden))


def _attend(attn: nn.Module, q: Tensor, k: Tensor, v: Tensor, allowed: Tensor) -> Tensor:
    """Multi-head scaled dot-product attention of GPT-2's ``attn`` module. q: (B, Tq, d); k, v:
    (B, S, d); allowed: (B, 1, Tq, S) bool. Returns (B, Tq, d) before the output projection."""
    B, Tq, d = q.shape
    heads, head_dim = attn.num_heads, attn.head_dim
    q = q.view(B, Tq, heads, head_dim).transpose(1, 2)
    k = k.view(B, -1, heads, head_dim).transpose(1, 2)
    v = v.view(B, -1, heads, head_dim).transpose(1, 2)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=attn.scaling)  # (B, H, Tq, hd)
    return out.transpose(1, 2).reshape(B, Tq, d)


# --- policy ------------------------------------------------------------------------------------


class PolicyWithValue(nn.Module):
    """Causal LM policy plus a value function.

    Shared (2019): a scalar ``value_head`` on the policy's own final hidden state, initialised to
    exactly zero. Separate (2020 option): ``value_model``, a copy of the reward model whose head is
    read at every position. ``forward`` is the training forward (one module, so DDP can wrap it).
    """

    def __init__(self, lm: PreTrainedModel, value_model: RewardModel | None = None) -> None:
        super().__init__()
        self.lm = disable_dropout(lm)
        self.value_model = value_model
        self.value_head: nn.Linear | None = None
        if value_model is None:
            self.value_head = nn.Linear(hidden_size(lm), 1).to(next(lm.parameters()).dtype)
            nn.init.zeros_(self.value_head.weight)
            nn.init.zeros_(self.value_head.bias)

    @classmethod
    def with_value_from_reward_model(cls, lm: PreTrainedModel, reward_model: RewardModel) -> PolicyWithValue:
        """2020: the value function is a separate network initialised from the reward model.

        The copy trains whatever the reward model's flags (PPO freezes the reward model it scores with)
        and is held in the policy's dtype; an untied LM head stays frozen, as in any reward model.
        """
        value_model = copy.deepcopy(reward_model).to(next(lm.parameters()).dtype).requires_grad_(True)
        freeze_untied_output_embeddings(value_model.lm)
        return cls(lm, value_model=value_model)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, response_start: int) -> tuple[Tensor, Tensor]:
        """Raw logits and values for the response tokens ``input_ids[:, response_start:]``.

        input_ids, attention_mask: (B, L). Position t of the outputs is read at input position
        ``response_start + t - 1`` (the token before response token t). Returns (B, T, V), (B, T).
        """
        hidden = trunk_forward(self.lm, input_ids, attention_mask).last_hidden_state  # (B, L, d)
        hidden = hidden[:, response_start - 1 : -1]  # (B, T, d)
        # The LM head runs on response positions only: for a 50k vocab it is most of the FLOPs.
        logits = self.lm.get_output_embeddings()(hidden)  # (B, T, V)
        if self.value_head is not None:
            values = self.value_head(hidden).squeeze(-1).float()  # (B, T)
        else:
            values = self.value_model.per_token(input_ids, attention_mask)[:, response_start - 1 : -1]
        return logits, values

    def save_pretrained(self, folder: str | Path, tokenizer: Tokenizer) -> None:
        """LM via ``save_pretrained``; the value head (or value model subfolder) beside it."""
        save_lm(self.lm, tokenizer, folder)
        if self.value_head is not None:
            tensors = {"weight": self.value_head.weight.detach(), "bias": self.value_head.bias.detach()}
            save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, str(Path(folder) / VALUE_HEAD_FILE))
        else:
            self.value_model.save_pretrained(Path(folder) / VALUE_MODEL_DIR, tokenizer)
        value = "shared" if self.value_head is not None else "separate"
        (Path(folder) / META_FILE).write_text(json.dumps({"kind": "policy", "value": value}))

    @classmethod
    def from_pretrained(cls, folder: str | Path, dtype: torch.dtype | None = None) -> tuple[PolicyWithValue, Tokenizer]:
        """Load a saved policy; a plain LM folder (no value head saved) gets a fresh zero value head.

        A PPO checkpoint folder (``step-NNNNNNNN/``) works too: its ``policy/`` subfolder is read.
        """
        if (Path(folder) / CHECKPOINT_POLICY_DIR / META_FILE).is_file():
            folder = Path(folder) / CHECKPOINT_POLICY_DIR
        lm, tokenizer = load_lm(folder, dtype=dtype)
        if (Path(folder) / VALUE_MODEL_DIR).is_dir():
            value_model, _ = RewardModel.from_pretrained(Path(folder) / VALUE_MODEL_DIR, dtype=dtype)
            return cls(lm, value_model=value_model), tokenizer
        policy = cls(lm)
        if (Path(folder) / VALUE_HEAD_FILE).is_file():
            tensors = load_file(str(Path(folder) / VALUE_HEAD_FILE))
            with torch.no_grad():
                policy.value_head.weight.copy_(tensors["weight"])
                policy.value_head.bias.copy_(tensors["bias"])
        return policy, tokenizer


def load_policy(
    name_or_path: str | Path, reward_model: RewardModel | None = None, dtype: torch.dtype | None = None
) -> tuple[PolicyWithValue, Tokenizer]:
    """A policy from a saved policy folder or PPO checkpoint, or a fresh value function on any LM
    (``"tiny"``, hub id, folder). With ``reward_model`` a fresh policy gets a separate value model
    copied from it (2020)."""
    folder = Path(str(name_or_path))
    if (folder / CHECKPOINT_POLICY_DIR / META_FILE).is_file():
        folder = folder / CHECKPOINT_POLICY_DIR
    if (folder / META_FILE).is_file() and json.loads((folder / META_FILE).read_text()).get("kind") == "policy":
        return PolicyWithValue.from_pretrained(folder, dtype=dtype)
    lm, tokenizer = load_lm(name_or_path, dtype=dtype)
    if reward_model is not None:
        return PolicyWithValue.with_value_from_reward_model(lm, reward_model), tokenizer
    return PolicyWithValue(lm), tokenizer
