"""`python -m harness compare`: read two hubs, compare them, render the result (table, JSON or Markdown with both
hubs' pictures side by side). Disagreements always come first; no rendering is ever written into a hub."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness import UserError
from harness.compare import AGREE, DISAGREE, HASH_CHECKS, WARN, Comparison, Finding, compare_hubs, resolve_tolerance
from harness.context import resolve_plan
from harness.fsio import atomic_write_text
from harness.hubread import read_hub
from harness.hubview import HubUnreadable
from harness.plan import load_plan
from harness.reporting import as_json, cell, emit, md_code, md_link, md_table, relative_link
from harness.schema import Verdict

SECTIONS = (("DISAGREEMENTS", DISAGREE), ("AGREEMENTS", AGREE), ("WARNINGS", WARN))


def _cell(f: Finding, value: Any, other: Any) -> str:
    """Hashes shortened; shapes as AxBxC, only the differing ones when they differ."""
    if value is None:
        return "-"
    if f.check in HASH_CHECKS and isinstance(value, (str, list)):
        return value[:12] if isinstance(value, str) else " + ".join(str(v)[:12] for v in value)
    if f.check == "shapes" and isinstance(value, dict):
        other = other if isinstance(other, dict) else {}
        keys = [k for k in value if value.get(k) != other.get(k)] or list(value)
        shown = {k: "x".join(map(str, value[k])) if isinstance(value[k], list) else value[k] for k in keys}
        return ", ".join(f"{k} {v}" for k, v in shown.items())
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return '""' if value == "" else str(value)


def _rows(result: Comparison, status: str) -> list[list[str]]:
    return [[f.target, f.check, _cell(f, f.a, f.b), "= A" if f.a == f.b and f.a is not None else _cell(f, f.b, f.a),
             f.detail] for f in result.by_status(status)]


def outcome_line(result: Comparison) -> str:
    return (f"result: {'AGREE' if result.agree else 'DISAGREE'} ({len(result.by_status(DISAGREE))} disagreement(s), "
            f"{len(result.by_status(WARN))} warning(s)); exit {result.exit_code}")


def _notes(result: Comparison) -> list[str]:
    """Agreement that is no evidence: a hub compared with itself, or hubs that agree on not GREEN."""
    lines = ["", "note: A and B are the same folder: this compares a hub with itself"] \
        if result.hub_a.resolve() == result.hub_b.resolve() else []
    not_green = result.not_green_in_both()
    overall = next((f for f in result.findings if f.check == "overall verdict"), None)
    if not_green or (overall and overall.status == AGREE and overall.a != Verdict.GREEN):
        what = f"targets {', '.join(not_green)}" if not_green else f"the hub verdict ({overall.a})"
        lines += ["", f"note: not GREEN in either hub: {what}; the hubs agree, but neither is GREEN evidence"]
    return lines


def render_table(result: Comparison) -> str:
    """Disagreements, agreements, warnings as GitHub-flavoured tables, then the outcome line."""
    t = result.tolerance
    lines = [f"A: {result.hub_a} ({result.signers[0]})", f"B: {result.hub_b} ({result.signers[1]})",
             f"tolerance: loss_rtol={t.loss_rtol:g}, duration_ratio_warn={t.duration_ratio_warn:g}, "
             f"duration_floor_s={t.duration_floor_s:g} ({result.tolerance_source})"]
    for title, status in SECTIONS:
        rows = _rows(result, status)
        lines += ["", f"{title} ({len(rows)})"] + ([md_table(rows, ["target", "check", "A", "B", "detail"], 140,
                                                             terminal=True)] if rows else [])
    return "\n".join(lines + _notes(result) + ["", outcome_line(result)])


def render_json(result: Comparison, command: str = "compare") -> str:
    """The comparison as one JSON object in the `emit` envelope."""
    return as_json(command, {"hub_a": str(result.hub_a), "hub_b": str(result.hub_b), "signers": list(result.signers),
                             "tolerance": asdict(result.tolerance), "tolerance_source": result.tolerance_source,
                             "result": "AGREE" if result.agree else "DISAGREE", "exit_code": result.exit_code,
                             "not_green_in_both": result.not_green_in_both(),
                             **{title.lower(): [asdict(f) for f in result.by_status(status)]
                                for title, status in SECTIONS}})


def render_md(result: Comparison, where: Path) -> str:
    """A Markdown report for `where` (outside both hubs, links relative to it): disagreements, pictures, the rest."""
    base = where.parent.resolve()
    lines = [f"# Comparison: A = {md_code(result.hub_a.name)} vs B = {md_code(result.hub_b.name)}", "",
             f"**{outcome_line(result)}**", "", f"- A: {md_code(result.hub_a)}", f"- B: {md_code(result.hub_b)}", ""]
    for title, status in SECTIONS:
        rows = _rows(result, status)
        lines += [f"## {title} ({len(rows)})", "", md_table(rows, ["target", "check", "A", "B", "detail"]) if rows
                  else "None.", ""]
        if status == DISAGREE and (pictures := [f for f in result.findings if f.check.startswith("picture ")]):
            lines += ["## Pictures", "", "| target | picture | A | B | pixels |", "|---|---|---|---|---|"]
            for f in pictures:
                pics = [md_link(side, relative_link(hub / rel, base), image=True) if rel else "(none)"
                        for side, hub, rel in (("A", result.hub_a, f.a), ("B", result.hub_b, f.b))]
                row = [f.target, f.check.removeprefix("picture "), *pics, f.detail]
                lines.append(f"| {' | '.join(cell(v) for v in row)} |")
            lines.append("")
    return "\n".join(lines + _notes(result))


def compare_paths(path_a: Path, path_b: Path, *, plan: Path | None, fmt: str, output: Path | None) -> int:
    """`compare`: read both hubs, compare, render; exit 0 agree, 1 disagree, 2 a hub unreadable."""
    plan_path = resolve_plan(plan) if plan is not None else None
    given = load_plan(plan_path) if plan_path is not None else None  # also maps a hand-made hub's logs to targets
    hubs, errors = [], []
    for path in (path_a, path_b):
        try:
            hubs.append(read_hub(path, given))
        except HubUnreadable as exc:
            errors.append(exc)
    if errors:
        return report_unreadable(errors, fmt)
    result = compare_hubs(*hubs, *resolve_tolerance(plan_path, hubs[0]))
    out = output.expanduser().resolve() if output else Path.cwd() / "comparison.md"
    if any(out.is_relative_to(hub.path) for hub in hubs):
        raise UserError(f"--output {output} is inside a hub; hubs are never written to: pick another file")
    text = {"json": render_json, "md": lambda r: render_md(r, out)}.get(fmt, render_table)(result)
    if output:
        atomic_write_text(out, text + "\n")
        print(f"wrote {out}; {outcome_line(result)}")
    else:
        print(text)
    return result.exit_code


def report_unreadable(errors: list[HubUnreadable], fmt: str, command: str = "compare") -> int:
    """Print why hubs cannot be compared; exit status 2."""
    emit(fmt, command, {"result": "UNREADABLE", "exit_code": 2,
                        "errors": [{"hub": str(e.hub), "problems": e.problems} for e in errors]}, "")
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 2
