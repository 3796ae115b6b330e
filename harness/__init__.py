"""Evidence harness: run an evidence plan's targets into a timestamped hub and judge them.

Import-light on purpose (stdlib only): the noxfile imports `harness.plan` and `harness.tools` in
nox's own interpreter, which holds nothing but nox. Commands: `python -m harness -h`; design:
docs/harness.md and docs/architecture.md.
"""


class UserError(Exception):
    """A mistake the user can fix (bad input, a missing file, a refused hub): one `error:` line, exit `code`.

    Every error the harness raises for bad input derives from this, so the command line catches one type.
    """

    code = 2
