"""The only code that imports boto3. Each module translates AWS errors into rds_ha errors."""
