"""Django side of training (runs, checkpoints, metrics, andon): built in the loop issue."""
