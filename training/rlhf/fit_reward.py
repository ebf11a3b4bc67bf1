"""``python -m training.rlhf.fit_reward CONFIG``: fit a reward model from a JSONL comparisons file
(see ``cli.fit_reward_main``). The library function is ``training.rlhf.reward_model.fit``."""

from training.rlhf.cli import fit_reward_main

if __name__ == "__main__":
    raise SystemExit(fit_reward_main())
