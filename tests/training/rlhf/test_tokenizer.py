"""Decoded text is storable: NUL and unpaired surrogates, which PostgreSQL text and jsonb reject, become U+FFFD."""
from training.rlhf.sampling import sample
from training.rlhf.tokenizer import ByteTokenizer, HFTokenizer, storable_text
from tests.training.rlhf.stub_models import forced_tiny


def test_storable_text_replaces_nul_and_lone_surrogates_only():
    assert storable_text("a\x00b\ud800c\udfff") == "a\ufffdb\ufffdc\ufffd"
    assert storable_text("héllo 😀\x01\n") == "héllo 😀\x01\n"


def test_byte_tokenizer_decodes_byte_zero_as_the_replacement_character():
    tokenizer = ByteTokenizer()
    assert tokenizer.decode([104, 0, 105, 256, 0]) == "h\ufffdi\ufffd"
    assert tokenizer.decode([0, 256], skip_special_tokens=False) == "\ufffd<eos>"


class _NulHub:
    """A Hugging Face tokenizer as far as HFTokenizer looks: its decode returns NUL and a lone surrogate."""

    eos_token_id, pad_token_id = 0, None

    def __len__(self):
        return 2

    def decode(self, ids, skip_special_tokens=True):
        return "x\x00\udc80"


def test_hf_tokenizer_decode_is_storable_too():
    assert HFTokenizer(_NulHub()).decode([1, 0]) == "x\ufffd\ufffd"


def test_samples_of_a_nul_emitting_model_are_storable():
    lm, tokenizer = forced_tiny([0])
    (group,) = sample(lm, tokenizer, ["q"], 2, response_length=3, query_length=4)
    assert [(s.tokens, s.text) for s in group] == [([0, 0, 0], "\ufffd" * 3)] * 2
