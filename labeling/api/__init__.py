"""DRF interface of the labeling app: thin views that parse, check permission and call one service,
one module a feature (serving, projects, data: imports and exports, instructions, dashboard), the
shared base classes and error shapes in `base`, the routes in `urls`."""
