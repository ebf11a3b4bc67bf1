"""imports (researcher set-up pages; issue 17). Filled in by its feature work."""
