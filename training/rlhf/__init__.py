"""Pure PyTorch + transformers RLHF library (reward model fitting, PPO with a KL penalty).

Imports nothing from Django or the apps; see README.md in this folder for the public API.
Submodules are imported explicitly (``from training.rlhf import ppo``) so that importing the
package stays cheap.
"""
