"""The SQL health probe's engine side: checks per engine (drivers imported here only), the verdicts
(`judge`), and the drill's writing client. Its sampler (AWS reads, publishing) is `app/probe.py`.

Imports `core` (and the logger) only.
"""
