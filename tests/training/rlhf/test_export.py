"""Standard formats out: a reward model as a Hugging Face sequence-classification folder scores as ours."""

import json

import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
)

from training.rlhf.cli import fit_reward_main
from training.rlhf.export import (
    EXPORT_META_FILE,
    HF_SEQUENCE_CLASSIFICATION_DIR,
    ExportError,
    byte_level_tokenizer,
    export_beside,
    export_sequence_classification,
)
from training.rlhf.models import RewardModel, build_tiny, positions_from_mask
from training.rlhf.tokenizer import ByteTokenizer, HFTokenizer, encode_queries, load_tokenizer, pad_right

QUERIES = ["How are you?", "Tell me a story about a fox", "", "Überraschung ✓"]
RESPONSES = ["Fine, thanks.", "Once upon a time", "Hello", ""]


def fitted(lm, readout: str = "last") -> RewardModel:
    """A reward model with a non-zero head bias and a normalisation that is not the identity."""
    model = RewardModel(lm, head_seed=3, readout=readout)
    with torch.no_grad():
        model.head.bias.fill_(0.3)
    model.set_normalization(1.7, -0.4)
    return model


def library_batch(tokenizer, query_length: int = 40, response_length: int = 24):
    """Left-padded queries and right-padded responses, the layout PPO and the reward fit score."""
    queries, query_mask = encode_queries(tokenizer, QUERIES, query_length)
    responses, response_mask = pad_right([tokenizer.encode(r) for r in RESPONSES], response_length,
                                         tokenizer.pad_token_id)
    return queries, query_mask, responses, response_mask


def hf_scores(folder, texts: list[str]) -> tuple[torch.Tensor, dict]:
    """The exported folder's logits on right-padded texts, through the Auto classes only."""
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    batch = tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (len(texts), 1)
    return logits[:, 0], batch


def test_tiny_byte_model_exports_and_scores_equal_ours_on_padded_batches(tmp_path):
    lm, tokenizer = build_tiny(seed=1)
    model = fitted(lm)
    export_sequence_classification(model, tokenizer, tmp_path)
    texts = [q + r for q, r in zip(QUERIES, RESPONSES)]
    theirs, batch = hf_scores(tmp_path, texts)
    assert (batch["attention_mask"] == 0).any()  # right padding in the batch
    with torch.no_grad():
        ours = model.score(*library_batch(tokenizer))
        direct = model(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=0)
    torch.testing.assert_close(theirs, direct, atol=1e-5, rtol=0)

    # The library's own layout (left-padded queries) scores the same with positions that pads do not
    # advance, as TRL's get_reward passes them.
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    queries, query_mask, responses, response_mask = library_batch(tokenizer)
    ids, mask = torch.cat([queries, responses], 1), torch.cat([query_mask, response_mask], 1)
    with torch.no_grad():
        left = classifier(input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask)).logits[:, 0]
    torch.testing.assert_close(left, ours, atol=1e-5, rtol=0)


def test_exported_byte_tokenizer_has_our_ids_pad_and_eos(tmp_path):
    lm, tokenizer = build_tiny()
    export_sequence_classification(fitted(lm), tokenizer, tmp_path)
    hf = AutoTokenizer.from_pretrained(tmp_path)
    assert (hf.pad_token_id, hf.eos_token_id, hf.padding_side) == (257, 256, "right")
    for text in QUERIES + RESPONSES + ["a\x00b", "tabs\tand\nnewlines  "]:
        assert hf.encode(text, add_special_tokens=False) == tokenizer.encode(text)
    ids = tokenizer.encode("héllo") + [256, 257]
    assert hf.decode(ids, skip_special_tokens=True) == tokenizer.decode(ids) == "héllo"
    assert isinstance(load_tokenizer(tmp_path), HFTokenizer)  # our loader reads the export too
    assert (tmp_path / EXPORT_META_FILE).is_file()


def test_hf_gpt2_with_a_pad_less_tokenizer_exports_with_pad_as_eos(tmp_path):
    """A GPT-2 built from its config with an HF tokenizer that has eos but no pad (like gpt2's)."""
    hf = byte_level_tokenizer(ByteTokenizer())
    hf.pad_token = None
    hf.save_pretrained(tmp_path / "base")
    tokenizer = load_tokenizer(tmp_path / "base")
    assert tokenizer.pad_token_id == tokenizer.eos_token_id == 256
    config = GPT2Config(vocab_size=258, n_positions=128, n_embd=32, n_layer=2, n_head=2,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    torch.manual_seed(0)
    model = fitted(GPT2LMHeadModel(config))
    export_sequence_classification(model, tokenizer, tmp_path / "out")
    texts = [q + r for q, r in zip(QUERIES, RESPONSES)]
    theirs, batch = hf_scores(tmp_path / "out", texts)
    assert AutoTokenizer.from_pretrained(tmp_path / "out").pad_token_id == 256
    with torch.no_grad():
        ours = model.score(*library_batch(tokenizer))
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=0)


def test_mean_readout_is_refused_and_skipped_beside(tmp_path):
    lm, tokenizer = build_tiny()
    with pytest.raises(ExportError, match="only readout 'last' exports exactly"):
        export_sequence_classification(fitted(lm, readout="mean"), tokenizer, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    reason = export_beside(fitted(lm, readout="mean"), tokenizer, tmp_path)
    assert reason is not None and "mean" in reason
    assert not (tmp_path / HF_SEQUENCE_CLASSIFICATION_DIR).exists()
    assert export_beside(fitted(lm), tokenizer, tmp_path) is None
    assert (tmp_path / HF_SEQUENCE_CLASSIFICATION_DIR / "config.json").is_file()


def tiny_llama() -> LlamaForCausalLM:
    config = LlamaConfig(vocab_size=258, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         pad_token_id=257, bos_token_id=256, eos_token_id=256)
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval()


def test_rmsnorm_trunk_exports_without_offset_and_refuses_one(tmp_path):
    """Llama's final norm has no bias: exact without an offset, refused with one."""
    tokenizer = ByteTokenizer()
    model = RewardModel(tiny_llama(), head_seed=3)
    model.set_normalization(1.7, 0.0)
    export_sequence_classification(model, tokenizer, tmp_path / "zero")
    theirs, _ = hf_scores(tmp_path / "zero", [q + r for q, r in zip(QUERIES, RESPONSES)])
    with torch.no_grad():
        ours = model.score(*library_batch(tokenizer))
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=0)
    with pytest.raises(ExportError, match="offset"):
        export_sequence_classification(fitted(tiny_llama()), tokenizer, tmp_path / "offset")


@pytest.mark.parametrize("readout", ["last", "mean"])
def test_fit_reward_command_writes_the_export_beside_the_model_or_says_why_not(tmp_path, capsys, readout):
    rows = [{"query": f"query {i}", "sample0": "ab" * (i % 3), "sample1": "#" * (1 + i % 4), "best": i % 2}
            for i in range(12)]
    (tmp_path / "comparisons.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = {"model": "tiny", "query_length": 8, "response_length": 8, "batch_size": 4, "normalize_samples": 8,
              "readout": readout, "comparisons_path": str(tmp_path / "comparisons.jsonl"),
              "output_dir": str(tmp_path / "rm")}
    (tmp_path / "rm.json").write_text(json.dumps(config))
    assert fit_reward_main([str(tmp_path / "rm.json")]) == 0
    out = capsys.readouterr().out
    folder = tmp_path / "rm" / HF_SEQUENCE_CLASSIFICATION_DIR
    if readout == "mean":
        assert "fit_reward: hf-sequence-classification skipped: readout 'mean'" in out
        assert not folder.exists()
        return
    assert f"fit_reward: hf-sequence-classification saved={folder}" in out
    model, tokenizer = RewardModel.from_pretrained(tmp_path / "rm")
    theirs, _ = hf_scores(folder, [q + r for q, r in zip(QUERIES, RESPONSES)])
    with torch.no_grad():
        ours = model.score(*library_batch(tokenizer))
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=0)
