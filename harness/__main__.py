"""`python -m harness <command>`: dispatch to the module that implements the command.

Modules are imported lazily, only for the command asked for, so a missing optional piece (or a
heavy import such as tabulate) never breaks the other commands. Each module exposes
`add_arguments(parser)` and `main(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "pipeline": ("harness.pipeline", "one hub, every target, then collate; prints hub + verdict last"),
    "run-target": ("harness.runner", "run one plan target into a hub (what a nox target session calls)"),
    "collate": ("harness.collate", "summarise a hub: summary.md, junit.xml, manifest.json, ledger"),
    "validate": ("harness.validate", "re-check a hub against its manifest (tamper check), wherever it is"),
    "compare": ("harness.comparereport", "compare two hubs (harness-made or hand-made)"),
    "reproduce": ("harness.reproduce", "rerun the plan that produced a hub and compare"),
    "env": ("harness.envs", "build or reuse the project's evidence venv; print its python"),
}


def _top_parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:<11} {text}" for name, (_, text) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="python -m harness",
        description="Evidence harness: run a plan's targets into a timestamped hub and judge them.",
        epilog=f"commands:\n{listing}\n\n`python -m harness <command> -h` shows a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=list(COMMANDS), metavar="command", help="one of: " + ", ".join(COMMANDS))
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    top = _top_parser().parse_args(argv)
    module_name, text = COMMANDS[top.command]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        print(f"python -m harness: command {top.command} is not available ({module_name} is not in this checkout)",
              file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog=f"python -m harness {top.command}", description=text)
    module.add_arguments(parser)
    return int(module.main(parser.parse_args(top.rest)))


if __name__ == "__main__":
    sys.exit(main())
