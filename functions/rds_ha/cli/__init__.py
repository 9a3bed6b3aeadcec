"""The operator CLI `rds-ha` (Typer + Rich): renders the App's typed results and status.

Imports `rds_ha.app` (the package), `core`'s models, `events`, the handlers (for `invoke`) and `local`
(the demo's lab). Handlers never import this package.
"""
