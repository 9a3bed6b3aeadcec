"""Pure domain code: configuration, models, actions, the planner, readiness, the status model, and the
ports (Protocols) the application's executor uses. No boto3, no I/O.

Imports only `core` (and the package's tag constants); every other layer may import it.
"""
