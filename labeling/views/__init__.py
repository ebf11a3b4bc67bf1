"""HTMX pages of the labeling app, one module a feature (the same names as services/, selectors/, api/):
serving (the labeling page), instructions, comparisons, dashboard. labeling/urls.py routes them."""
