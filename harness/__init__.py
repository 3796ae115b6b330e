"""Evidence harness: run an evidence plan's targets into a timestamped hub and judge them.

Import-light on purpose (stdlib and filelock): nox imports `harness.plan`, `harness.context` and
`harness.hub` in its own interpreter. Commands: `python -m harness -h`; design: docs/harness.md.
"""
