"""Model FLOPs and generation bytes of one PPO step on a GPT-2 shape (pure Python; used by ppo_gpu.py).

The same count is used for both sides of a comparison: the work a minimal implementation must do,
not what either one happens to compute (TRL's forwards compute logits at every position, ours only
at the response positions; neither is counted). With L layers, width d, vocabulary V, query Lq,
response T, S = Lq + T tokens a row, B rows, E PPO epochs:

* trunk matrix weights  N = 12·L·d²  (q, k, v, out: 4d²; MLP: 8d²; biases, norms, embeddings left out)
* a forward over a token at context c (positions attended, itself included): 2·N + 4·L·d·c
  (2·N for the matrix products, 2·L·d·c each for q·kᵀ and the weighted sum of v)
* LM head: 2·d·V per position whose logits are used; scalar head (value, reward): 2·d per row
* a full-sequence forward of one row: 2·N·S + 4·L·d·S(S+1)/2
* training (forward + backward) = 3 × forward
* generation with a KV cache: S − 1 token forwards (prefill Lq, then T − 1 decodes; the last sampled
  token is never fed back) and T LM-head positions
* scoring (no-grad) forwards: the reference (trunk + LM head at T positions), the reward model (trunk
  + scalar head) and, with a separate value model, the value model (trunk + scalar head)
* update: E × [3 × policy (trunk + LM head at T positions) + 3 × separate value trunk]

MFU = FLOPs / (seconds × peak FLOP/s). Generation bytes (memory-bandwidth roofline): every forward
pass of the generation loop (T of them) reads all the policy's weights once (``weight_bytes`` each:
4 for fp32 weights, also under autocast, 2 for bf16), and each decode at context c reads the KV
cache of every row, 2·L·d·c values of ``kv_bytes`` each (2 under bf16 autocast, 4 in fp32).
"""

from __future__ import annotations

from dataclasses import dataclass

SHAPES = {  # GPT-2 configs (Radford et al. 2019); "tiny" is the library tests' shape
    "tiny": dict(n_layer=2, n_embd=64, n_head=4, vocab=258),
    "gpt2": dict(n_layer=12, n_embd=768, n_head=12, vocab=50257),
    "gpt2-large": dict(n_layer=36, n_embd=1280, n_head=20, vocab=50257),
}


@dataclass(frozen=True)
class Shape:
    n_layer: int
    n_embd: int
    vocab: int
    n_positions: int = 1024

    @property
    def trunk_params(self) -> int:
        """Matrix weights a token passes through in the transformer blocks (12·L·d²)."""
        return 12 * self.n_layer * self.n_embd**2

    @property
    def params(self) -> int:
        """All parameters of GPT2LMHeadModel (tied LM head): blocks with biases and norms, embeddings, final norm."""
        L, d = self.n_layer, self.n_embd
        block = 12 * d * d + 13 * d  # qkv 3d²+3d, proj d²+d, fc 4d²+4d, out 4d²+d, two norms 4d
        return L * block + self.vocab * d + self.n_positions * d + 2 * d


def trunk_forward_flops(shape: Shape, seq: int) -> float:
    """One row's full-sequence forward through the blocks: 2·N·S + 4·L·d·S(S+1)/2."""
    return 2 * shape.trunk_params * seq + 4 * shape.n_layer * shape.n_embd * seq * (seq + 1) / 2


def head_flops(shape: Shape, positions: int) -> float:
    return 2 * shape.n_embd * shape.vocab * positions


@dataclass(frozen=True)
class StepFlops:
    generate: float
    scoring: float
    update: float

    @property
    def total(self) -> float:
        return self.generate + self.scoring + self.update


def ppo_step_flops(shape: Shape, batch: int, query: int, response: int, epochs: int, separate_value: bool) -> StepFlops:
    """Model FLOPs of one PPO step (see the module docstring)."""
    seq = query + response
    trunk = trunk_forward_flops(shape, seq)
    scalar = 2 * shape.n_embd
    # Generation: S − 1 token forwards at contexts 1 … S − 1, i.e. the full-sequence count for S − 1 tokens.
    generate = trunk_forward_flops(shape, seq - 1) + head_flops(shape, response)
    scoring = (trunk + head_flops(shape, response)) + (trunk + scalar)  # reference, reward model
    if separate_value:
        scoring += trunk + scalar
    policy_train = 3 * (trunk + head_flops(shape, response) + (0 if separate_value else scalar * response))
    value_train = 3 * (trunk + scalar * response) if separate_value else 0.0
    update = epochs * (policy_train + value_train)
    return StepFlops(batch * generate, batch * scoring, batch * update)


def generation_bytes(
    shape: Shape, batch: int, query: int, response: int, weight_bytes: int, kv_bytes: int
) -> float:
    """Bytes the generation loop must read: T × all weights, plus each decode's KV cache (2·L·d·c per row)."""
    weights = response * shape.params * weight_bytes
    # Decode j (1 … T − 1) feeds token Lq + j, which attends to Lq + j positions.
    contexts = sum(query + j for j in range(1, response))
    kv = batch * 2 * shape.n_layer * shape.n_embd * contexts * kv_bytes
    return float(weights + kv)
