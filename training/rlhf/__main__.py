"""``python -m training.rlhf fit-reward|ppo|pretrain CONFIG`` (also under ``torchrun``): see cli.py."""

from training.rlhf.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
