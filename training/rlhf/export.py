"""Standard formats out: a fitted reward model as a Hugging Face sequence-classification folder.

``export_sequence_classification(model, tokenizer, folder)`` writes a folder that
``AutoModelForSequenceClassification.from_pretrained`` (``num_labels=1``) and ``AutoTokenizer.from_pretrained``
load, so TRL, OpenRLHF or a vLLM reward server can score with it unchanged. Its logit is our normalised reward
``gain * (w . h + b) + bias``: the score head's weight is ``gain * w``, and because the classification heads of
GPT-2, Llama and most decoders have no bias, the offset ``gain * b + bias`` goes into the bias of the trunk's
final norm (``ln_f``) along the head's direction, which changes nothing but the score. A trunk whose final norm
has no bias (RMSNorm: Llama, Mistral, Qwen) exports only with a zero offset; otherwise ``ExportError`` says so.

``readout="last"`` exports exactly: the head reads the last non-pad token, which is ours when the rows
hold query+response with pads only at the ends (``pad_token_id`` is never a real token) and positions that
pads do not advance. So either right-pad contiguous query+response text (``padding_side="right"``, the
saved tokenizer's default), or, for left-padded rows, pass ``position_ids = cumsum(mask) - 1`` as TRL's
``get_reward`` does. ``readout="eot"`` exports the same way; its rows must end in the eos token (append it
after each response, as 2020 did). ``readout="mean"`` averages the head over the response and is refused.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, PreTrainedModel, PreTrainedTokenizerFast

from training.rlhf.models import RewardModel
from training.rlhf.tokenizer import ByteTokenizer, HFTokenizer, Tokenizer

HF_SEQUENCE_CLASSIFICATION_DIR = "hf-sequence-classification"  # beside the reward model's own files
EXPORT_META_FILE = "rlhf_export.json"
FINAL_NORMS = ("ln_f", "norm", "final_layer_norm", "decoder.final_layer_norm")  # on the base model
PROBE_TEXTS = ("The reward model export is checked on these rows.", "Short one.")


class ExportError(ValueError):
    """The reward model cannot be written exactly as a sequence-classification model; the message says why."""


def export_sequence_classification(model: RewardModel, tokenizer: Tokenizer, folder: str | Path) -> Path:
    """Write ``model`` as a Hugging Face sequence-classification folder (weights, config, tokenizer).

    The exported scores are checked against ``model`` on two probe rows (one padded) before anything is
    written; a mismatch (an architecture whose head reads elsewhere) raises ``ExportError``.
    """
    if model.readout == "mean":
        raise ExportError(
            f"readout {model.readout!r} averages the head over the response's tokens; a sequence-classification "
            "head reads one token, so only readout 'last' exports exactly"
        )
    hf_tokenizer = export_tokenizer(tokenizer)
    classifier, folded_into = sequence_classification_model(model, int(hf_tokenizer.pad_token_id))
    _check(model, classifier, hf_tokenizer)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    classifier.save_pretrained(str(folder), safe_serialization=True)
    hf_tokenizer.save_pretrained(str(folder))
    _portable_tokenizer_class(folder)
    meta = {
        "kind": "reward_model_sequence_classification",
        "readout": model.readout,
        **({"append": "the eos token after each response (readout 'eot', as 2020 reads its reward)"}
           if model.readout == "eot" else {}),
        "gain": float(model.gain),
        "bias": float(model.bias),
        "offset_folded_into": folded_into,
        "padding": "right-pad query+response, or pass position_ids = cumsum(attention_mask) - 1",
    }
    (folder / EXPORT_META_FILE).write_text(json.dumps(meta, indent=2))
    return folder


def export_beside(model: RewardModel, tokenizer: Tokenizer, model_folder: str | Path) -> str | None:
    """The export into ``model_folder/hf-sequence-classification`` (what the CLI's ``fit-reward`` and the
    product's reward fit write beside the reward model's own files). Returns None when written, else why it
    was skipped (a ``mean`` readout, an offset with nowhere to go), for the fit's output to say."""
    try:
        export_sequence_classification(model, tokenizer, Path(model_folder) / HF_SEQUENCE_CLASSIFICATION_DIR)
    except ExportError as error:
        return str(error)
    return None


def sequence_classification_model(model: RewardModel, pad_token_id: int) -> tuple[PreTrainedModel, str | None]:
    """An ``AutoModelForSequenceClassification`` (on the CPU) whose logit is ``model``'s reward, and the name
    of the parameter that holds the offset (None when it is zero or the head has a bias)."""
    config = copy.deepcopy(model.lm.config)
    config.num_labels = 1
    config.id2label, config.label2id = {0: "reward"}, {"reward": 0}
    config.problem_type = "regression"
    config.pad_token_id = pad_token_id
    config.architectures = None
    dtype = next(model.lm.parameters()).dtype
    classifier = AutoModelForSequenceClassification.from_config(config).to(dtype).eval()
    trunk = {k: v.detach().cpu() for k, v in model.lm.base_model.state_dict().items()}
    classifier.base_model.load_state_dict(trunk, strict=True)
    score = getattr(classifier, "score", None)
    if not isinstance(score, torch.nn.Linear) or score.out_features != 1:
        raise ExportError(f"{type(classifier).__name__} has no one-output linear `score` head to hold the reward")
    gain, bias = model.gain.detach().double().cpu(), model.bias.detach().double().cpu()
    weight = gain * model.head.weight.detach().double().cpu()  # (1, d)
    offset = gain * model.head.bias.detach().double().cpu() + bias  # (1,)
    folded_into = None
    with torch.no_grad():
        score.weight.copy_(weight.to(dtype))
        if score.bias is not None:
            score.bias.copy_(offset.to(dtype))
        elif float(offset.abs()) > 0:
            name, norm = _final_norm(classifier)
            norm_bias = getattr(norm, "bias", None)
            if not isinstance(norm_bias, torch.nn.Parameter) or norm_bias.shape != weight.shape[1:]:
                raise ExportError(
                    f"{type(classifier).__name__}'s score head has no bias and its final norm ({name}) none either, "
                    f"so the reward's offset {float(offset):.6g} (gain * head bias + bias) has nowhere to go"
                )
            if float(weight.norm()) == 0:
                raise ExportError("the reward head's weight is zero: the offset cannot be folded along it")
            # score(norm + delta) = score(norm) + w . delta; delta along w adds exactly the offset.
            delta = offset * weight[0] / weight[0].dot(weight[0])
            norm_bias.copy_((norm_bias.double() + delta).to(dtype))
            folded_into = f"{classifier.base_model_prefix}.{name}.bias"
    return classifier, folded_into


def export_tokenizer(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    """A Hugging Face tokenizer with the same ids, a pad token and right padding.

    The byte tokenizer becomes a byte-level BPE without merges (byte b is id b, ``<eos>`` 256, ``<pad>``
    257); a Hugging Face tokenizer is copied, its pad falling back to eos as our adapter's does (then a
    text that ends in eos is read at the token before it).
    """
    if isinstance(tokenizer, ByteTokenizer):
        return byte_level_tokenizer(tokenizer)
    if isinstance(tokenizer, HFTokenizer):
        hf = copy.deepcopy(tokenizer.hf)
        if hf.pad_token is None:
            hf.pad_token = hf.eos_token
        hf.padding_side = "right"
        return hf
    raise ExportError(f"no Hugging Face tokenizer can be written for {type(tokenizer).__name__}")


def byte_level_tokenizer(tokenizer: ByteTokenizer) -> PreTrainedTokenizerFast:
    """``tokenizer`` as a ``PreTrainedTokenizerFast`` (GPT-2's byte-to-character map, no merges)."""
    from tokenizers import Tokenizer as RustTokenizer
    from tokenizers import decoders, models, pre_tokenizers

    chars = _bytes_to_unicode()
    vocab = {chars[b]: b for b in range(256)}
    vocab.update({"<eos>": tokenizer.eos_token_id, "<pad>": tokenizer.pad_token_id})
    rust = RustTokenizer(models.BPE(vocab=vocab, merges=[]))
    rust.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    rust.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=rust, bos_token="<eos>", eos_token="<eos>", pad_token="<pad>", padding_side="right"
    )


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 bytes to printable characters (what ``ByteLevel`` expects)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def _portable_tokenizer_class(folder: Path) -> None:
    """transformers 5 names a tokenizer built from a ``tokenizers`` object ``TokenizersBackend``; the 4.x
    releases that reward servers still pin know it as ``PreTrainedTokenizerFast`` (5 reads both)."""
    path = folder / "tokenizer_config.json"
    config = json.loads(path.read_text())
    if config.get("tokenizer_class") == "TokenizersBackend":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        path.write_text(json.dumps(config, indent=2) + "\n")


def _final_norm(classifier: PreTrainedModel) -> tuple[str, torch.nn.Module]:
    base = classifier.base_model
    for name in FINAL_NORMS:
        try:
            return name, base.get_submodule(name)
        except AttributeError:
            continue
    raise ExportError(f"cannot find the final norm of {type(base).__name__} (looked for {', '.join(FINAL_NORMS)})")


@torch.no_grad()
def _check(model: RewardModel, classifier: PreTrainedModel, hf_tokenizer: PreTrainedTokenizerFast) -> None:
    """The exported logits equal ``model``'s rewards on right-padded probe rows (a structural check: the
    tolerance allows for another device or TF32)."""
    batch = hf_tokenizer(list(PROBE_TEXTS), padding=True, return_tensors="pt", add_special_tokens=False)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    device = next(model.parameters()).device
    ours = model(ids.to(device), mask.to(device)).float().cpu()
    theirs = classifier(input_ids=ids, attention_mask=mask).logits[:, 0].float()
    scale = 1e-3 if next(classifier.parameters()).dtype == torch.float32 else 0.1
    tolerance = scale * (1 + ours.abs())
    if not bool(((ours - theirs).abs() <= tolerance).all()):
        raise ExportError(
            f"{type(classifier).__name__} does not reproduce the reward model (ours {ours.tolist()}, "
            f"exported {theirs.tolist()}); this architecture cannot be exported as is"
        )
