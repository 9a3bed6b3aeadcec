"""Pure domain code: configuration, topology snapshot, planner. No boto3, no I/O."""
