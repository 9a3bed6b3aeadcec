"""Lambda handlers: thin. Parse the event, call the App (`rds_ha.app`), return a JSON-able result.

Import `rds_ha.app` (the package, never one of its modules), `core`, `events` and `observability`.
"""
