"""Sampling from a causal LM: batched fixed-length generation with a KV cache (2019 style: no
stopping at EOS, plain categorical sampling at a temperature), response truncation for scoring,
and K samples per query for labeling, valid ones only when asked (2019's rejection sampling)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from transformers import PreTrainedModel

from training.rlhf.callbacks import ShouldStop, StopRequested
from training.rlhf.decoding import decoders_for, resolve_decoding
from training.rlhf.models import PolicyWithValue, positions_from_mask, trunk_forward
from training.rlhf.tokenizer import Tokenizer, as_ids, pad_left


@dataclass
class Generation:
    """Sampled responses and what PPO needs from the same forward passes."""

    responses: Tensor  # (B, T) sampled ids, never truncated
    logprobs: Tensor  # (B, T) log-probs of the sampled ids under the temperature-scaled policy
    values: Tensor | None  # (B, T) shared value head read at the token before each response token


# No-grad log-probs and entropies take their log-softmax over row chunks of at most this many logits, so the
# fp32 copies of a (B, T, V) tensor are never made for the whole batch (64 MiB per chunk in fp32).
LOGIT_CHUNK_ELEMENTS = 1 << 24


def _row_chunks(logits: Tensor) -> int:
    """Rows per log-softmax chunk: all of them when autograd needs the graph, else within the element budget."""
    if torch.is_grad_enabled() and logits.requires_grad:
        return logits.shape[0]
    per_row = max(1, logits[0].numel()) if logits.shape[0] else 1
    return max(1, LOGIT_CHUNK_ELEMENTS // per_row)


def logprobs_of(logits: Tensor, tokens: Tensor, temperature: float) -> Tensor:
    """Log-probs of ``tokens`` (B, T) under ``softmax(logits / temperature)``, logits (B, T, V) -> (B, T)."""
    step = _row_chunks(logits)
    out = []
    for start in range(0, logits.shape[0], step):
        logps = torch.log_softmax(logits[start : start + step].float() / temperature, dim=-1)  # (b, T, V)
        out.append(logps.gather(-1, tokens[start : start + step].unsqueeze(-1)).squeeze(-1))
    return torch.cat(out) if len(out) != 1 else out[0]


def entropy_of(logits: Tensor, temperature: float) -> Tensor:
    """Entropy of the full temperature-scaled distribution at each position, (B, T, V) -> (B, T)."""
    step = _row_chunks(logits)
    out = []
    for start in range(0, logits.shape[0], step):
        logps = torch.log_softmax(logits[start : start + step].float() / temperature, dim=-1)
        out.append(-(logps.exp() * logps).sum(-1))
    return torch.cat(out) if len(out) != 1 else out[0]


@torch.no_grad()
def response_logprobs(
    lm: PreTrainedModel,
    input_ids: Tensor,
    attention_mask: Tensor,
    response_start: int,
    temperature: float,
    forward_batch_size: int | None = None,
) -> Tensor:
    """``logprobs_of(response_logits(...), input_ids[:, response_start:], temperature)`` without ever holding
    the (B, T, V) logits: the trunk runs ``forward_batch_size`` rows at a time (None = all), and the LM head and
    log-softmax run on row chunks within ``LOGIT_CHUNK_ELEMENTS``. (B, L) -> (B, T)."""
    B = input_ids.shape[0]
    rows = forward_batch_size or B
    head = lm.get_output_embeddings()
    out = []
    for start in range(0, B, rows):
        ids, mask = input_ids[start : start + rows], attention_mask[start : start + rows]
        hidden = trunk_forward(lm, ids, mask).last_hidden_state[:, response_start - 1 : -1]  # (b, T, d)
        tokens = ids[:, response_start:]
        step = max(1, LOGIT_CHUNK_ELEMENTS // max(1, tokens.shape[1] * head.weight.shape[0]))
        for i in range(0, ids.shape[0], step):
            out.append(logprobs_of(head(hidden[i : i + step]), tokens[i : i + step], temperature))
    return torch.cat(out)


@torch.no_grad()
def generate(
    model: PolicyWithValue | PreTrainedModel,
    queries: Tensor,
    query_mask: Tensor,
    response_length: int,
    temperature: float,
    generator: torch.Generator,
    should_stop: ShouldStop | None = None,
    stop_check_every: int = 8,
    forward_batch_size: int | None = None,
    decoding: str = "auto",
) -> Generation:
    """Sample ``response_length`` tokens after each left-padded query, (B, Lq) -> (B, T); ``temperature=0``
    decodes greedily (the most likely token, log-probs of the untempered distribution). PPO never trains at 0.

    Deterministic for a given ``generator`` state, whatever ``forward_batch_size`` (rows per forward pass;
    None = all). Raises ``StopRequested`` when ``should_stop()`` turns true (checked every ``stop_check_every``
    tokens). ``decoding`` (``config.DECODINGS``): ``auto`` decodes a GPT-2 trunk over a static key/value cache,
    replayed as a CUDA graph on CUDA, and other trunks through ``transformers``' cache ("dynamic"); the samples
    are the same within fp32 rounding of the logits.
    """
    policy = model if isinstance(model, PolicyWithValue) else None
    lm = model.lm if policy is not None else model
    lm_head = lm.get_output_embeddings()
    B = queries.shape[0]
    rows = forward_batch_size or B
    chunks = [slice(start, start + rows) for start in range(0, B, rows)]
    mask = query_mask.long()
    positions = positions_from_mask(mask)  # (B, Lq)
    input_ids = queries
    pasts: list = [None] * len(chunks)
    mode = resolve_decoding(decoding, lm, queries.device)
    Lq = queries.shape[1]
    kept = None
    if mode != "dynamic" and response_length > 0:
        chunk_rows = tuple(len(range(B)[rows_i]) for rows_i in chunks)
        kept = decoders_for(lm, chunk_rows, Lq + response_length, queries.device, mode == "cuda-graph")
    responses, logprobs, values = [], [], []
    for t in range(response_length):
        if should_stop is not None and t % stop_check_every == 0 and should_stop():
            raise StopRequested("stop requested during generation")
        # The chunks run in lockstep (token t for every chunk, then t + 1), each with its own KV cache, and one
        # draw covers the whole batch: the samples do not depend on forward_batch_size.
        hidden_parts = []
        if kept is not None and t == 0:
            hidden_parts = [
                kept.decoders[i].prefill(input_ids[rows_i], mask[rows_i], positions[rows_i])
                for i, rows_i in enumerate(chunks)
            ]
        elif kept is not None:
            column = torch.full((1,), Lq + t - 1, dtype=torch.long, device=queries.device)
            for i, rows_i in enumerate(chunks):
                kept.decoders[i].open_column(column)
                hidden_parts.append(kept.step(i, input_ids[rows_i], positions[rows_i], column))
        else:
            for i, rows_i in enumerate(chunks):
                out = trunk_forward(
                    lm, input_ids[rows_i], mask[rows_i], position_ids=positions[rows_i], past_key_values=pasts[i],
                    use_cache=True,
                )
                pasts[i] = out.past_key_values
                hidden_parts.append(out.last_hidden_state[:, -1])  # (b, d)
        hidden = torch.cat(hidden_parts) if len(hidden_parts) > 1 else hidden_parts[0]  # (B, d)
        if temperature == 0:  # greedy (2020's samples for people and its evaluation); log-probs at T = 1
            logps = torch.log_softmax(lm_head(hidden).float(), dim=-1)  # (B, V)
            token = logps.argmax(-1, keepdim=True)  # (B, 1)
        else:
            logps = torch.log_softmax(lm_head(hidden).float() / temperature, dim=-1)  # (B, V)
            token = torch.multinomial(logps.exp(), 1, generator=generator)  # (B, 1)
        responses.append(token)
        logprobs.append(logps.gather(-1, token))
        if policy is not None and policy.value_head is not None:
            values.append(policy.value_head(hidden).float())  # (B, 1)
        input_ids = token
        positions = positions[:, -1:] + 1
        if kept is None:
            mask = torch.cat([mask, torch.ones((B, 1), dtype=mask.dtype, device=mask.device)], dim=1)
    return Generation(
        responses=torch.cat(responses, dim=1),
        logprobs=torch.cat(logprobs, dim=1),
        values=torch.cat(values, dim=1) if values else None,
    )


def truncation_mask(responses: Tensor, truncate_token: int | None, truncate_after: int) -> tuple[Tensor, Tensor]:
    """Which tokens survive truncation, and whether each row is valid: the one validity rule, shared by
    PPO's scoring (invalid rows score the penalty) and the samples shown to labelers (invalid ones are not).

    A row is valid when it holds ``truncate_token`` at an index >= ``truncate_after``; valid rows keep
    tokens up to and including the first such occurrence, invalid rows keep everything.
    responses: (B, T) -> keep (B, T) bool, valid (B,) bool. ``truncate_token=None`` keeps all, all valid.
    """
    B, T = responses.shape
    if truncate_token is None:
        return torch.ones_like(responses, dtype=torch.bool), torch.ones(B, dtype=torch.bool, device=responses.device)
    index = torch.arange(T, device=responses.device).expand(B, T)  # (B, T)
    hits = (responses == truncate_token) & (index >= truncate_after)  # (B, T)
    valid = hits.any(-1)  # (B,)
    first = torch.where(valid, hits.int().argmax(-1), torch.full_like(valid, T - 1, dtype=torch.long))  # (B,)
    return index <= first.unsqueeze(-1), valid


def truncate(responses: Tensor, truncate_token: int | None, truncate_after: int, pad_id: int) -> tuple[Tensor, Tensor]:
    """Cut each response after its first ``truncate_token`` at index >= ``truncate_after`` and pad
    the rest with ``pad_id`` (2019 ``lm_tasks.postprocess``). Rows without one are left whole and
    marked invalid; the caller scores them with the penalty (-1). (B, T) -> ((B, T), (B,) bool)."""
    keep, valid = truncation_mask(responses, truncate_token, truncate_after)
    return torch.where(keep, responses, torch.full_like(responses, pad_id)), valid


@dataclass
class SampledResponse:
    """One sample for labeling: the kept tokens after truncation and their text."""

    tokens: list[int]
    text: str
    valid: bool


@torch.no_grad()
def sample(
    lm: PreTrainedModel | PolicyWithValue,
    tokenizer: Tokenizer,
    queries: Sequence[str | Sequence[int]],
    k: int,
    response_length: int,
    query_length: int,
    temperature: float = 1.0,
    seed: int = 0,
    truncate_token: int | None = None,
    truncate_after: int = 0,
    batch_size: int = 64,
    should_stop: ShouldStop | None = None,
) -> list[list[SampledResponse]]:
    """K samples per query (texts or token ids), for comparisons shown to labelers.

    Returns one list of K ``SampledResponse`` per query, in query order; the same ``seed`` gives the
    same samples. Queries keep their last ``query_length`` tokens. Raises ``StopRequested`` when
    ``should_stop()`` turns true mid-generation.
    """
    device = next(lm.parameters()).device
    ids, mask = pad_left([as_ids(tokenizer, q) for q in queries], query_length, tokenizer.pad_token_id)
    ids, mask = ids.repeat_interleave(k, dim=0), mask.repeat_interleave(k, dim=0)  # (N*K, Lq)
    generator = torch.Generator(device=device).manual_seed(seed)
    flat: list[SampledResponse] = []
    for start in range(0, ids.shape[0], batch_size):
        gen = generate(
            lm,
            ids[start : start + batch_size].to(device),
            mask[start : start + batch_size].to(device),
            response_length,
            temperature,
            generator,
            should_stop=should_stop,
        )
        keep, valid = truncation_mask(gen.responses, truncate_token, truncate_after)
        for row, row_keep, row_valid in zip(gen.responses.tolist(), keep.tolist(), valid.tolist()):
            tokens = [tok for tok, kept in zip(row, row_keep) if kept]
            flat.append(SampledResponse(tokens=tokens, text=tokenizer.decode(tokens), valid=bool(row_valid)))
    return [flat[i * k : (i + 1) * k] for i in range(len(queries))]


# Seeds of later tries are this far apart, so no try repeats another's draws for nearby seeds.
TRY_SEED_STRIDE = 1_000_003


@dataclass
class ValidSamples:
    """K valid samples per query, or none for a query whose tries ran out, and what it took."""

    samples: list[list[SampledResponse]]  # per query, in query order: K valid samples, or [] (dropped)
    draws: int  # responses generated, over all tries
    invalid: int  # of those, how many failed the validity rule

    @property
    def dropped(self) -> int:
        return sum(1 for group in self.samples if not group)

    @property
    def invalid_share(self) -> float:
        return self.invalid / self.draws if self.draws else 0.0


def sample_valid(
    lm: PreTrainedModel | PolicyWithValue,
    tokenizer: Tokenizer,
    queries: Sequence[str | Sequence[int]],
    k: int,
    max_tries: int,
    seed: int = 0,
    **kwargs,
) -> ValidSamples:
    """``sample`` with rejection: each of a query's K slots is drawn up to ``max_tries`` times until it
    passes ``truncation_mask``'s rule, so labelers never spend a label on a response PPO would score
    with the penalty (2019 showed only such samples). A query with a slot still invalid after the
    tries is dropped (its list is empty). The first try draws exactly what ``sample`` draws for
    ``seed``; ``kwargs`` are ``sample``'s (lengths, temperature, truncation, batch size, should_stop).
    """
    if max_tries < 1:
        raise ValueError(f"max_tries must be at least 1, got {max_tries}")
    kept: list[list[SampledResponse]] = [[] for _ in queries]
    draws = invalid = 0
    for attempt in range(max_tries):
        # One row per missing slot, in query order: the first try is ``sample(queries, k)`` exactly.
        slots = [i for i, group in enumerate(kept) for _ in range(k - len(group))]
        if not slots:
            break
        drawn = sample(lm, tokenizer, [queries[i] for i in slots], 1, seed=seed + attempt * TRY_SEED_STRIDE, **kwargs)
        for i, (response,) in zip(slots, drawn):
            draws += 1
            if response.valid:
                kept[i].append(response)
            else:
                invalid += 1
    return ValidSamples(samples=[group if len(group) == k else [] for group in kept], draws=draws, invalid=invalid)
