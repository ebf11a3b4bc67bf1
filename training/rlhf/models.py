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


def trunk_forward(
    lm: PreTrainedModel, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor | None = None, **kwargs
):
    """The LM's base transformer (no LM head); ``.last_hidden_state`` is post final norm, (B, L, d).

    Pads are masked as keys and do not advance positions (ALGORITHMS.md §2.12).
    """
    if position_ids is None:
        position_ids = positions_from_mask(attention_mask)
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
    """

    def __init__(self, lm: PreTrainedModel, head_seed: int = 0) -> None:
        super().__init__()
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

    def raw(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Head output before normalisation at the last real token of each row, (B, L) -> (B,)."""
        hidden = trunk_forward(self.lm, input_ids, attention_mask).last_hidden_state  # (B, L, d)
        L = attention_mask.shape[-1]
        positions = torch.arange(L, device=attention_mask.device).expand_as(attention_mask)  # (B, L)
        last = torch.where(attention_mask.bool(), positions, torch.zeros_like(positions)).amax(-1)  # (B,)
        picked = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (B, d)
        return self.head(picked).squeeze(-1).float()

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Normalised rewards, (B, L) -> (B,)."""
        return self.gain * self.raw(input_ids, attention_mask) + self.bias

    def score(self, queries: Tensor, query_mask: Tensor, responses: Tensor, response_mask: Tensor) -> Tensor:
        """Rewards of left-padded queries (B, Lq) joined to right-padded responses (B, Lr) -> (B,).

        This is the ``RewardFn`` signature the PPO trainer calls.
        """
        ids = torch.cat([queries, responses], dim=1)
        mask = torch.cat([query_mask, response_mask], dim=1).long()
        return self(ids, mask)

    def score_k(self, queries: Tensor, query_mask: Tensor, responses: Tensor, response_mask: Tensor) -> Tensor:
        """Rewards of K responses per query, with the query's forward pass shared by all K.

        queries, query_mask: (B, Lq) left-padded; responses, response_mask: (B, K, Lr) right-padded.
        Returns (B, K), equal (up to float rounding, gradients included) to ``score`` on each
        query+response row. The query runs once and its key/value cache is repeated K times, so a
        comparison costs Lq + K*Lr token positions instead of K*(Lq + Lr).
        """
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
        picked = torch.where((n_real > 0).unsqueeze(-1), from_response, from_query)
        raw = self.head(picked).squeeze(-1).float()  # (B*K,)
        return (self.gain * raw + self.bias).view(B, K)

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
        (Path(folder) / META_FILE).write_text(json.dumps({"kind": "reward_model"}))

    @classmethod
    def from_pretrained(cls, folder: str | Path, dtype: torch.dtype | None = None) -> tuple[RewardModel, Tokenizer]:
        lm, tokenizer = load_lm(folder, dtype=dtype)
        model = cls(lm)
        tensors = load_file(str(Path(folder) / REWARD_HEAD_FILE))
        with torch.no_grad():
            model.head.weight.copy_(tensors["head.weight"])
            model.head.bias.copy_(tensors["head.bias"])
            model.set_normalization(float(tensors["gain"]), float(tensors["bias"]))
        return model, tokenizer


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
        """2020: the value function is a separate network initialised from the reward model."""
        return cls(lm, value_model=copy.deepcopy(reward_model))

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
