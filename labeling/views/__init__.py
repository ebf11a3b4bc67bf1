"""HTMX pages of the labeling app, one module a feature (the same names as services/, selectors/, api/):
serving (the labeling page), instructions, comparisons, dashboard, and the researcher's set-up pages:
projects (new project), imports, exports, account (API tokens). labeling/urls.py routes them."""
