"""Tiny models whose samples a test controls (no Django)."""
import torch

from training.rlhf.models import build_tiny


def forced_tiny(tokens: list[int], seed: int = 0):
    """A tiny GPT-2 and its byte tokenizer that sample each of ``tokens`` with equal probability, whatever the
    context: the final layer norm outputs one constant vector, and only those tokens' output rows align with it."""
    lm, tokenizer = build_tiny(seed=seed)
    direction = torch.zeros(lm.config.n_embd)
    direction[0] = 10.0
    with torch.no_grad():
        lm.transformer.ln_f.weight.zero_()
        lm.transformer.ln_f.bias.copy_(direction)
        head = lm.get_output_embeddings().weight  # tied to the input embeddings: only the output matters here
        head.zero_()
        for token in tokens:
            head[token] = direction  # logit 100 against 0: the others are drawn with probability ~e^-100
    return lm, tokenizer
