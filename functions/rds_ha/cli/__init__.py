"""The operator CLI `rds-ha` (Typer + Rich). Handlers never import this package."""
