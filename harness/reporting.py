"""How the harness speaks: durations, sizes, Markdown tables, and `--format json` output, printed by `emit`
in one envelope (`schema`, `command`, `exit_code`, then the command's fields; docs/harness.md)."""

from __future__ import annotations

import json
import os
import re
import sys
from itertools import accumulate
from pathlib import Path
from typing import Any, Iterable

CLI_SCHEMA = "evidence-cli/1"


def fmt_duration(seconds: float | None) -> str:
    """`12.3 s`, or `2 min 05.0 s` beyond a minute; `—` when unknown."""
    if seconds is None:
        return "—"
    minutes, rest = divmod(seconds, 60)
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(minutes)} min {rest:04.1f} s"


def fmt_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def short_list(items: list[str], limit: int = 3) -> str:
    """`a, b, c (+2 more)`: the first `limit` items and how many were left out."""
    return ", ".join(items[:limit]) + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def relative_link(target: str | Path, folder: str | Path) -> str:
    """`target` as a POSIX path relative to `folder`: a link that survives copying both together."""
    return Path(os.path.relpath(target, folder)).as_posix()


class Markdown(str):
    """Text that is Markdown already (a link, a code span): `md_text` and `cell` leave its markup alone."""


_PIPES, _ENTITIES = {"|": "\\|", "\n": " ", "\r": " "}, {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_HTML = str.maketrans(_ENTITIES)
_CELL = {True: str.maketrans(_PIPES), False: str.maketrans({**_PIPES, **_ENTITIES})}  # by `terminal`


def md_text(text: Any) -> str:
    """`text` for a Markdown line: `<`, `>`, `&` as entities, so a log's `<script>` shows as text, never as HTML."""
    return text if isinstance(text, Markdown) else str(text).translate(_HTML)


def _fence(text: str, shortest: int) -> str:
    """More backticks than `text` holds in a row: a fence that nothing inside can close."""
    return "`" * max(shortest, max(map(len, re.findall("`+", text)), default=0) + 1)


def md_code(text: Any) -> Markdown:
    """`text` as a code span (CommonMark 6.1), whatever backticks it holds."""
    text = str(text).replace("\n", " ")
    fence = _fence(text, 1)
    pad = " " if "`" in (text[:1], text[-1:]) or (text[:1] == text[-1:] == " " and text.strip()) else ""
    return Markdown(f"{fence}{pad}{text}{pad}{fence}")


def md_block(text: Any) -> Markdown:
    """`text` as a fenced code block (CommonMark 4.5) that no line of it can close."""
    fence = _fence(str(text), 3)
    return Markdown(f"{fence}\n{text}\n{fence}")


def md_link(text: Any, target: str | Path, image: bool = False) -> Markdown:
    """`[text](target)` (`![...]` for a picture) that CommonMark reads the same for any path (`<...>`, escapes)."""
    dest = re.sub(r"[\\<>]", lambda m: "\\" + m.group(), str(target).replace("\n", "%0A").replace("\r", "%0D"))
    if not dest or re.search(r"[\s()<>\x00-\x1f\x7f]", dest):
        dest = f"<{dest}>"
    label = re.sub(r"[\\\[\]`]", lambda m: "\\" + m.group(), md_text(text))
    return Markdown(f"{'!' if image else ''}[{label}]({dest})")


def cell(value: Any, limit: int = 120, *, terminal: bool = False) -> str:
    """A table cell: None → '—', `|` escaped, one line, `<>&` as entities unless `terminal`; plain text clipped."""
    if value is None or value == "":
        return "—"
    if isinstance(value, Markdown):
        return value.translate(_CELL[True])
    pieces = [ch.translate(_CELL[terminal]) for ch in str(value)]
    if sum(map(len, pieces)) <= limit:
        return "".join(pieces)
    return "".join(p for p, end in zip(pieces, accumulate(map(len, pieces))) if end < limit) + "…"


def md_table(rows: Iterable[Iterable[Any]], headers: list[str], limit: int = 120, *, terminal: bool = False) -> str:
    """A GitHub-flavoured table (tabulate) whose cells stay readable; one for a `terminal` keeps `<>&` as they are."""
    from tabulate import tabulate  # imported when rendering: nox imports the harness without it
    return tabulate([[cell(v, limit, terminal=terminal) for v in row] for row in rows], headers=headers,
                    tablefmt="github", disable_numparse=True)


def as_json(command: str, payload: dict[str, Any]) -> str:
    """The JSON object of `--format json`: the envelope plus `payload`."""
    return json.dumps({"schema": CLI_SCHEMA, "command": command, **payload}, indent=2, default=str)


def emit(fmt: str, command: str, payload: dict[str, Any], text: str) -> None:
    """Print `text`, or with `--format json` one JSON object (`as_json`)."""
    if fmt == "json":
        print(as_json(command, payload))
    elif text:
        print(text)


def fail(message: str) -> int:
    """Print `error: <message>` on stderr; 2 is the exit status of a command that could not do its job."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def emit_run(fmt: str, command: str, result: Any, exit_code: int, interrupted: bool) -> int:
    """A collated run's report: the short table, the ledger line, then `hub:` and `verdict:` last (or JSON)."""
    c = result.collation
    rows = [[t.name, str(t.verdict), fmt_duration(t.duration_s), t.reason] for t in c.targets]
    scope = "" if not c.partial_run else f" (partial: {len(c.targets)} of {len(c.ctx.plan.targets)} plan targets)"
    verdict = f"{c.overall}{scope}" + (f" (interrupted; hub {c.hub_rel})" if interrupted else "")
    emit(fmt, command, {"hub": c.hub_rel, "verdict": str(c.overall), "partial": c.partial_run,
                        "interrupted": interrupted, "reason": c.overall_reason,
                        "targets": [{"name": r[0], "verdict": r[1], "duration": r[2], "reason": r[3]} for r in rows],
                        "ledger": result.ledger_note, "exit_code": exit_code},
         "\n".join(["", md_table(rows, ["target", "verdict", "duration", "reason"], 100, terminal=True), "",
                    result.ledger_note, f"hub: {c.hub_rel}", f"verdict: {verdict}"]))
    if os.environ.get("GITHUB_STEP_SUMMARY"):  # GitHub renders it on the run's page
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as handle:
            handle.write((c.hub.path / "summary.md").read_text(encoding="utf-8") + "\n")
    return exit_code

