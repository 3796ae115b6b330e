"""Evidence harness: run an evidence plan's targets into a timestamped hub and judge them.

Stdlib-only on purpose: nox's own interpreter imports `harness.plan` and `harness.tools`. Commands:
`python -m harness -h`; design: docs/harness.md and docs/architecture.md.
"""


class UserError(Exception):
    """A mistake the user can fix (bad input, a missing file, a refused hub): one `error:` line, exit `code`."""
    code = 2  # every bad-input error derives from this, so the command line catches one type
