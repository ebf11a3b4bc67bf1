"""Kept for its importers (ppo.py, older notes): the torchrun launcher and rank entry are training/services/ranks.py,
which runs PPO and reward fits alike. `ppo_execute_ranks` is its `execute_ranks`, unchanged for PPO."""
from training.services.ranks import _die_with_parent, execute_ranks, rank_main, worker_devices

ppo_execute_ranks = execute_ranks

__all__ = ["_die_with_parent", "execute_ranks", "ppo_execute_ranks", "rank_main", "worker_devices"]
