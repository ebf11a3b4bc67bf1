"""`python -m training.ranks RUN_ID OWNER`: one rank of a multi-GPU PPO or fit_reward run, as torchrun starts it
(training/services/ranks.py dispatches on the run's kind). Django is set up before anything imports a model."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    import django

    django.setup()
    from training.services.ranks import rank_main

    rank_main(int(sys.argv[1]), sys.argv[2])
