"""Render a comparison of two hubs: a terminal table, JSON, or a Markdown report.

Disagreements always come first: they are what a reviewer must act on. JSON follows the
envelope of `harness.reporting.emit` (schema documented in docs/reproduce.md).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from harness.compare import AGREE, DISAGREE, HASH_CHECKS, WARN, Comparison, Finding
from harness.reporting import CLI_SCHEMA, md_table
from harness.schema import Verdict

SECTIONS = (("DISAGREEMENTS", DISAGREE), ("AGREEMENTS", AGREE), ("WARNINGS", WARN))


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return '""' if value == "" else str(value)


def _cell(f: Finding, value: Any, other: Any) -> str:
    """Hashes shortened; shapes as AxBxC, only the differing ones when they differ."""
    if f.check in HASH_CHECKS and isinstance(value, str):
        return value[:12]
    if f.check in HASH_CHECKS and isinstance(value, list):
        return " + ".join(str(v)[:12] for v in value)
    if f.check == "shapes" and isinstance(value, dict):
        other = other if isinstance(other, dict) else {}
        keys = [k for k in value if value.get(k) != other.get(k)] or list(value)
        return ", ".join(f"{k} {'x'.join(map(str, value[k])) if isinstance(value[k], list) else value[k]}" for k in keys)
    return _fmt(value)


def _rows(result: Comparison, status: str) -> list[list[str]]:
    return [[f.target, f.check, _cell(f, f.a, f.b), "= A" if f.a == f.b and f.a is not None else _cell(f, f.b, f.a),
             f.detail] for f in result.by_status(status)]


def outcome_line(result: Comparison) -> str:
    n_dis, n_warn = len(result.by_status(DISAGREE)), len(result.by_status(WARN))
    return f"result: {'AGREE' if result.agree else 'DISAGREE'} ({n_dis} disagreement(s), {n_warn} warning(s)); exit {result.exit_code}"


def _not_green_note(result: Comparison) -> list[str]:
    not_green = result.not_green_in_both()
    overall = next((f for f in result.findings if f.check == "overall verdict"), None)
    if not not_green and not (overall and overall.status == AGREE and overall.a != Verdict.GREEN):
        return []
    what = f"targets {', '.join(not_green)}" if not_green else f"the hub verdict ({overall.a})"
    return ["", f"note: not GREEN in either hub: {what}; the hubs agree, but neither is GREEN evidence"]


def render_table(result: Comparison) -> str:
    """Disagreements, agreements, warnings as GitHub-flavoured tables, then the outcome line."""
    t = result.tolerance
    lines = [f"A: {result.hub_a}", f"B: {result.hub_b}",
             f"tolerance: loss_rtol={t.loss_rtol:g}, duration_ratio_warn={t.duration_ratio_warn:g}, "
             f"duration_floor_s={t.duration_floor_s:g} ({result.tolerance_source})"]
    for title, status in SECTIONS:
        rows = _rows(result, status)
        lines += ["", f"{title} ({len(rows)})"] + ([md_table(rows, ["target", "check", "A", "B", "detail"], 140)] if rows else [])
    return "\n".join(lines + _not_green_note(result) + ["", outcome_line(result)])


def comparison_payload(result: Comparison) -> dict[str, Any]:
    """The JSON fields of a comparison (inside the `emit` envelope)."""
    return {"hub_a": str(result.hub_a), "hub_b": str(result.hub_b), "tolerance": asdict(result.tolerance),
            "tolerance_source": result.tolerance_source, "result": "AGREE" if result.agree else "DISAGREE",
            "exit_code": result.exit_code, "not_green_in_both": result.not_green_in_both(),
            **{key: [asdict(f) for f in result.by_status(status)]
               for key, status in (("disagreements", DISAGREE), ("agreements", AGREE), ("warnings", WARN))}}


def render_json(result: Comparison, command: str = "compare") -> str:
    return json.dumps({"schema": CLI_SCHEMA, "command": command, **comparison_payload(result)}, indent=2, default=str)
