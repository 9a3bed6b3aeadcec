"""rds-ha: high-availability automation for Amazon RDS primaries with read replicas."""

__version__ = "0.1.0"

# Tag keys rds-ha reads and writes on RDS instances.
TAG_CLUSTER = "rds-ha:cluster"
TAG_ROLE = "rds-ha:role"
TAG_FENCED = "rds-ha:fenced"
TAG_NEVER_PROMOTE = "rds-ha:never-promote"
TAG_CREATED_BY = "rds-ha:created-by"
