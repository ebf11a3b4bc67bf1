"""Tokenizers: a file-free byte-level tokenizer for tiny models, and an adapter giving Hugging Face
tokenizers the same small interface. Batch helpers pad queries on the left and responses on the right.

Decoded text is always storable: NUL and unpaired surrogates become U+FFFD (``storable_text``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor
from transformers import AutoTokenizer

BYTE_TOKENIZER_FILE = "byte_tokenizer.json"
REPLACEMENT_CHARACTER = "\ufffd"
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # PostgreSQL text and jsonb reject NUL and lone surrogates


def storable_text(text: str) -> str:
    """``text`` with NUL and unpaired surrogates replaced by U+FFFD, as invalid UTF-8 already is.

    A model can emit byte 0 (or, through a lenient tokenizer, a lone surrogate); stored as is, such
    a sample fails a PostgreSQL insert (and a JSON export), so every decode ends here: the text
    stays inert, keeps its length in characters, and shows where the model wrote something odd.
    """
    return UNSTORABLE.sub(REPLACEMENT_CHARACTER, text)


class Tokenizer(Protocol):
    """What training/rlhf needs from a tokenizer. ``decode`` returns storable text (``storable_text``)."""

    eos_token_id: int
    pad_token_id: int
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str: ...
    def save_pretrained(self, folder: str | Path) -> None: ...


class ByteTokenizer:
    """UTF-8 bytes as ids 0-255, then ``eos`` (256) and ``pad`` (257). Needs no files; saves as JSON."""

    def __init__(self) -> None:
        self.eos_token_id = 256
        self.pad_token_id = 257
        self.vocab_size = 258

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``: one per UTF-8 byte, no special tokens added."""
        return list(text.encode("utf-8"))

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """Text of ``ids``; invalid UTF-8 and NUL become U+FFFD; specials are dropped or shown as <eos>/<pad>."""
        out, chunk = [], bytearray()
        for i in (int(i) for i in ids):
            if i < 256:
                chunk.append(i)
                continue
            out.append(chunk.decode("utf-8", errors="replace"))
            chunk = bytearray()
            if not skip_special_tokens:
                out.append("<eos>" if i == self.eos_token_id else "<pad>")
        out.append(chunk.decode("utf-8", errors="replace"))
        return storable_text("".join(out))

    def save_pretrained(self, folder: str | Path) -> None:
        """Write ``byte_tokenizer.json`` so a checkpoint folder is self-contained."""
        Path(folder).mkdir(parents=True, exist_ok=True)
        spec = {"type": "byte", "eos_token_id": self.eos_token_id, "pad_token_id": self.pad_token_id}
        (Path(folder) / BYTE_TOKENIZER_FILE).write_text(json.dumps(spec))

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> ByteTokenizer:
        spec = json.loads((Path(folder) / BYTE_TOKENIZER_FILE).read_text())
        if spec.get("type") != "byte":
            raise ValueError(f"{folder}/{BYTE_TOKENIZER_FILE} is not a byte tokenizer spec: {spec}")
        return cls()


class HFTokenizer:
    """Adapter over a Hugging Face tokenizer; pad falls back to eos (GPT-2 has no pad token)."""

    def __init__(self, hf_tokenizer) -> None:
        self.hf = hf_tokenizer
        self.eos_token_id = int(hf_tokenizer.eos_token_id)
        pad = hf_tokenizer.pad_token_id
        self.pad_token_id = int(pad if pad is not None else hf_tokenizer.eos_token_id)
        self.vocab_size = len(hf_tokenizer)

    def encode(self, text: str) -> list[int]:
        return list(self.hf.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """The Hugging Face text, made storable (GPT-2 has a token for byte 0)."""
        return storable_text(self.hf.decode(list(ids), skip_special_tokens=skip_special_tokens))

    def save_pretrained(self, folder: str | Path) -> None:
        self.hf.save_pretrained(str(folder))


def load_tokenizer(name_or_path: str | Path) -> Tokenizer:
    """The byte tokenizer when the folder holds ``byte_tokenizer.json``, else ``AutoTokenizer``."""
    if (Path(name_or_path) / BYTE_TOKENIZER_FILE).is_file():
        return ByteTokenizer.from_pretrained(name_or_path)
    return HFTokenizer(AutoTokenizer.from_pretrained(str(name_or_path)))


def as_ids(tokenizer: Tokenizer, item: str | Sequence[int]) -> list[int]:
    """Token ids of a text, or the ids themselves when already tokenized."""
    return tokenizer.encode(item) if isinstance(item, str) else [int(i) for i in item]


def pad_left(seqs: Sequence[Sequence[int]], length: int, pad_id: int) -> tuple[Tensor, Tensor]:
    """Keep the last ``length`` ids of each sequence and left-pad. Returns ids and mask, (N, length)."""
    rows = [list(seq)[-length:] if length > 0 else [] for seq in seqs]
    return _padded([[pad_id] * (length - len(r)) + r for r in rows], [length - len(r) for r in rows], length, left=True)


def pad_right(seqs: Sequence[Sequence[int]], length: int, pad_id: int) -> tuple[Tensor, Tensor]:
    """Keep the first ``length`` ids of each sequence and right-pad. Returns ids and mask, (N, length)."""
    rows = [list(seq)[:length] for seq in seqs]
    return _padded([r + [pad_id] * (length - len(r)) for r in rows], [len(r) for r in rows], length, left=False)


def _padded(rows: list[list[int]], edges: list[int], length: int, left: bool) -> tuple[Tensor, Tensor]:
    """One tensor built from padded Python rows (no per-row tensors); the mask from each row's edge
    (first real column when ``left``, else the number of real ids)."""
    ids = torch.tensor(rows, dtype=torch.long).view(len(rows), length)
    columns = torch.arange(length)
    edge = torch.tensor(edges, dtype=torch.long).view(-1, 1)
    mask = (columns >= edge) if left else (columns < edge)
    return ids, mask.long()


def encode_queries(tokenizer: Tokenizer, queries: Sequence[str | Sequence[int]], length: int) -> tuple[Tensor, Tensor]:
    """Texts or id lists -> left-padded ids and mask, (N, length), keeping each query's last tokens."""
    return pad_left([as_ids(tokenizer, q) for q in queries], length, tokenizer.pad_token_id)
