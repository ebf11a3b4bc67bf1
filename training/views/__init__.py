"""HTMX pages of the training app, one module a feature (the same names as services/ and selectors/):
runs (a run's page, admin actions, checkpoint download, plots), rounds (a project's rounds-and-runs
page, starting a round, win rates), andon (pulling the cord). training/urls.py routes them."""
