"""The only code that imports boto3: one method per AWS call, each translating AWS errors into rds_ha's.

Imports `core` (models, errors) only. Constructed by the application layer (`app/deps.py`) and the local
lab (`local/`); handlers and the CLI never touch an adapter.
"""
