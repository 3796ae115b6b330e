"""Evidence harness: run an evidence plan's targets into a timestamped hub and judge them.

Import-light on purpose (stdlib only): nox imports `harness.plan` and `harness.envstamp` in its
own interpreter. Commands: `python -m harness -h`; design: docs/harness.md.
"""
