"""The "eot" reward readout (2020): the head at an end-of-text token after the response, appended when the
stored response lacks it, on every scoring path, saved with the weights and exported."""

import json

import torch

from training.rlhf.config import RewardFitConfig
from training.rlhf.export import EXPORT_META_FILE, export_sequence_classification
from training.rlhf.models import META_FILE, RewardModel, append_eot, build_tiny
from training.rlhf.reward_model import fit
from training.rlhf.tokenizer import pad_left, pad_right
from tests.training.rlhf.helpers import marker_comparisons, score_k_three_ways, small_reward_config

PAD, EOS = 257, 256


def eot_model(seed: int = 2, n_layer: int = 2) -> RewardModel:
    rm = RewardModel(build_tiny(seed=seed, n_layer=n_layer)[0], head_seed=3, readout="eot")
    rm.set_normalization(1.5, -0.25)
    return rm


def test_append_eot_writes_eos_after_the_last_real_token_once():
    responses, mask = pad_right([[1, 2], [3, EOS], [], [4, 5, 6]], 3, pad_id=PAD)
    out, out_mask = append_eot(responses, mask, EOS)
    assert out.tolist() == [[1, 2, EOS], [3, EOS, PAD], [EOS, PAD, PAD], [4, 5, 6]]  # full row: read as is
    assert out_mask.tolist() == [[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]]
    again, again_mask = append_eot(out, out_mask, EOS)
    assert torch.equal(again, out) and torch.equal(again_mask, out_mask)


def test_eot_readout_equals_the_last_readout_on_responses_ending_in_eos_and_differs_from_last_without():
    rm = eot_model()
    last = RewardModel(rm.lm, readout="last")
    last.load_state_dict(rm.state_dict())
    queries, query_mask = pad_left([[5, 6, 7, 8], [9, 10]], 5, pad_id=PAD)
    stored, stored_mask = pad_right([[1, 2, 3], [4]], 5, pad_id=PAD)  # texts as stored: no eos
    with_eos, with_eos_mask = pad_right([[1, 2, 3, EOS], [4, EOS]], 5, pad_id=PAD)
    with torch.no_grad():
        eot = rm.score(queries, query_mask, stored, stored_mask)
        torch.testing.assert_close(eot, last.score(queries, query_mask, with_eos, with_eos_mask))
        assert not torch.allclose(eot, last.score(queries, query_mask, stored, stored_mask), atol=1e-3)


def test_eot_readout_packed_cached_and_plain_paths_agree():
    rm = eot_model(seed=4, n_layer=3)
    queries, query_mask = pad_left([[5, 6, 7, 8], [9, 10], [11, 12, 13]], 6, pad_id=PAD)
    rows = [[[1, 2, 3], [4, EOS], [6]], [[7], [], [8, 9, 10, 11, 12]], [[10, 11], [12], [13]]]
    flat, flat_mask = pad_right([r for comparison in rows for r in comparison], 5, pad_id=PAD)
    (packed, _), (cached, _), (plain, _) = score_k_three_ways(rm, queries, query_mask, flat.view(3, 3, 5),
                                                              flat_mask.view(3, 3, 5))
    torch.testing.assert_close(packed, plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cached, plain, atol=1e-5, rtol=1e-5)


def test_eot_readout_fits_saves_and_exports(tmp_path):
    config = small_reward_config(readout="eot", response_length=20, normalize="none", normalize_before=False)
    assert isinstance(config, RewardFitConfig)
    result = fit(config, marker_comparisons(24))
    assert result.model.readout == "eot"
    folder = tmp_path / "rm"
    result.model.save_pretrained(folder, result.tokenizer)
    assert json.loads((folder / META_FILE).read_text())["readout"] == "eot"
    loaded, _ = RewardModel.from_pretrained(folder)
    assert loaded.readout == "eot" and loaded.eos_token_id == EOS
    exported = export_sequence_classification(loaded, result.tokenizer, tmp_path / "hf")
    meta = json.loads((exported / EXPORT_META_FILE).read_text())
    assert meta["readout"] == "eot" and "eos" in meta["append"]
