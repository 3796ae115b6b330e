"""Render a hub's `summary.md`: the page a reviewer reads in ten seconds.

It answers, in order: did everything really run and pass (targets table, overall verdict), how
long did it take, what did the CLI smoke produce (loss, epochs, tensor shapes), with which data
(fixture, sha256), on what code and environment (git SHA, dirty, versions, GPU hidden), what is
at risk, and how to reproduce it. Tables are GitHub-flavoured (tabulate); links are relative to
summary.md so the file reads correctly on a code host.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any, Iterable

from tabulate import tabulate

from harness.records import GREEN, Collation, DatasetNote, TargetResult, fmt_duration
from harness.risks import BLOCKER, Risk


def _cell(value: Any) -> str:
    """A table cell: None → '—', pipes escaped so they do not split the markdown row."""
    if value is None or value == "":
        return "—"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _code(value: str | None) -> str:
    return "—" if not value else f"`{value}`"


def _table(rows: Iterable[Iterable[Any]], headers: list[str]) -> str:
    return tabulate([[_cell(v) for v in row] for row in rows], headers=headers, tablefmt="github",
                    disable_numparse=True)


def _link(collation: Collation, rel_to_root: str | Path) -> str:
    """Path relative to the hub (where summary.md lives), as POSIX."""
    return Path(os.path.relpath(collation.abs_path(rel_to_root), collation.hub)).as_posix()


def display_command(collation: Collation, t: TargetResult) -> str:
    """Selector, or the command line with the interpreter and project root shortened."""
    if t.kind == "pytest":
        return (t.record.selector if t.record and t.record.selector else t.command) or ""
    argv = list(t.record.argv) if t.record and t.record.argv else shlex.split(t.command)
    root = str(collation.project_root) + os.sep
    shown = []
    for i, arg in enumerate(argv):
        if i == 0 and Path(arg).name.startswith("python"):
            arg = "python"
        shown.append(arg.replace(root, ""))
    return shlex.join(shown)


def _counts(t: TargetResult) -> str:
    c = t.counts
    if t.record is None or c is None:
        return "—"
    if t.kind != "pytest":
        return "n/a (command)"
    text = f"{c.passed} / {c.failed + c.errors} / {c.skipped + c.xfailed}"
    return text + (f" ({c.errors} errors)" if c.errors else "")


def _targets_section(c: Collation) -> list[str]:
    rows = []
    for t in c.targets:
        if t.log_present:
            log = f"[{t.log}]({t.log})"
        elif (c.hub / f"{t.log}.partial").is_file():
            log = f"[{t.log}.partial]({t.log}.partial) (unfinished)"
        else:
            log = f"{t.log} (missing)"
        rows.append([t.name, _code(display_command(c, t)), f"**{t.verdict}**", _counts(t),
                     fmt_duration(t.duration_s), log, t.reason])
    headers = ["Target", "Selector / command", "Verdict", "Passed / failed / skipped", "Duration", "Log", "Reason"]
    return ["## Targets", "", _table(rows, headers), ""]


def _shape(value: Any) -> str:
    return "(" + ", ".join(str(v) for v in value) + ")" if isinstance(value, (list, tuple)) else str(value)


def _smoke_section(c: Collation) -> list[str]:
    out: list[str] = []
    for t in c.targets:
        if t.kind != "command":
            continue
        out += [f"## CLI smoke: `{t.name}`", ""]
        rec = t.record.record if t.record else None
        if not rec:
            why = "no verdict record" if t.record is None else "the command printed no `TRAIN_RECORD` line"
            out += [f"No training record ({why}); see [{t.log}]({t.log})." if t.log_present
                    else f"No training record ({why}) and no log.", ""]
            continue
        loss = rec.get("final_train_loss")
        rows = [
            ["Verdict", f"**{t.verdict}** (exit code {t.record.exit_code})"],
            ["Wall time (target)", fmt_duration(t.duration_s)],
            ["Training time (CLI)", fmt_duration(rec.get("wall_seconds"))],
            ["Epochs", rec.get("epochs")],
            ["Final train loss", f"{loss:.6g}" if isinstance(loss, (int, float)) else loss],
            ["Loss per epoch", ", ".join(f"{v:.6g}" if isinstance(v, (int, float)) else str(v)
                                         for v in rec.get("train_loss_history") or []) or None],
            ["Batch size", rec.get("batch_size")],
        ]
        for key in ("bundle", "checkpoint"):
            if rec.get(key):
                rows.append([key.capitalize(), f"[{Path(rec[key]).name}]({_link(c, rec[key])})"])
        out += [_table(rows, ["Quantity", "Value"]), ""]
        shapes = rec.get("shapes") or {}
        if shapes:
            out += [_table([[_code(k), _code(_shape(v))] for k, v in shapes.items()], ["Tensor", "Shape"]), ""]
    return out


def _dataset_section(datasets: list[DatasetNote]) -> list[str]:
    if not datasets:
        return []
    rows = []
    for d in datasets:
        match = {True: "yes", False: "**NO**", None: "no sidecar"}[d.sidecar_matches]
        sha = f"`{d.sha256}`" + (" (computed)" if d.sha256_source == "computed" else "") if d.sha256 else d.sha256_source
        rows.append([d.target, _code(d.file), sha, match, d.n_patterns, d.n_groups, d.gridsize])
    headers = ["Target", "Fixture", "sha256", "Matches sidecar", "Patterns", "Groups (n_images)", "gridsize"]
    return ["## Dataset", "", _table(rows, headers), ""]


def _merged(c: Collation, getter) -> str:
    """One value when all targets agree, else `value (targets)` per distinct value."""
    seen: dict[str, list[str]] = {}
    for t in c.targets:
        if t.record is None:
            continue
        seen.setdefault(str(getter(t.record.provenance)), []).append(t.name)
    if not seen:
        return "—"
    if len(seen) == 1:
        return next(iter(seen))
    return "; ".join(f"{v} ({', '.join(names)})" for v, names in seen.items())


def _environment_section(c: Collation) -> list[str]:
    g = c.run.git
    dirty_files = sorted(set(g.dirty_files).union(*(t.record.provenance.dirty_files for t in c.targets if t.record)))
    dirty = "unknown" if g.dirty is None else ("yes" if g.dirty or dirty_files else "no")
    if dirty_files:
        dirty += ": " + ", ".join(dirty_files[:8]) + (f" (+{len(dirty_files) - 8})" if len(dirty_files) > 8 else "")
    src_files = sorted({f for files in c.src_changes.values() for f in files})
    phases = [phase for phase, files in c.src_changes.items() if files]
    src = [f"yes: {', '.join(src_files)} (seen {', '.join(phases)})"] if src_files else []
    rows = [
        ["Git SHA (run start)", _code(g.sha)],
        ["Git SHA (targets)", _merged(c, lambda p: p.git_sha)],
        ["Dirty tree (tracked files)", dirty],
        ["src/ differs from HEAD", "; ".join(src) if src else "no (checked at start, per target and at collate)"],
        ["Python", _merged(c, lambda p: p.python)],
        ["torch", _merged(c, lambda p: p.torch)],
        ["lightning", _merged(c, lambda p: p.lightning)],
        ["numpy", _merged(c, lambda p: p.numpy)],
        ["Platform", _merged(c, lambda p: p.platform)],
        ["GPU hidden (CUDA_VISIBLE_DEVICES)", _merged(c, lambda p: f'"{p.cuda_visible_devices}"'
                                                     if p.cuda_visible_devices is not None else "not recorded")],
        ["torch.cuda.is_available()", _merged(c, lambda p: p.cuda_available)],
        ["Seed / PYTHONHASHSEED / threads", _merged(c, lambda p: f"{p.seed} / {p.pythonhashseed} / {p.threads}")],
    ]
    return ["## Environment", "", _table(rows, ["Field", "Value"]), ""]


def _risks_section(risks: list[Risk]) -> list[str]:
    out = ["## Remaining risks", ""]
    if not risks:
        out += ["None found: every target GREEN, no DeprecationWarning in the logs, clean tree, "
                "no target near its timeout.", ""]
        return out
    for r in risks:
        out.append(f"- {'**Blocker:**' if r.severity == BLOCKER else 'Warning:'} {r.text}")
    return out + [""]


def _wall_span(c: Collation) -> str:
    starts = [t.record.started_utc for t in c.targets if t.record and t.record.started_utc]
    ends = [t.record.ended_utc for t in c.targets if t.record and t.record.ended_utc]
    if not starts or not ends:
        return "—"
    return f"{min(starts)} → {max(ends)}"


def _code_line(c: Collation) -> str:
    """One line: commit, tree state, src/ guard, versions, GPU hidden (details in Environment)."""
    sha = (c.run.git.sha or "unknown")[:12]
    dirty = "dirty tree" if c.run.git.dirty else "clean tree"
    src = "src/ changed" if any(c.src_changes.values()) else "src/ unchanged"
    provs = [t.record.provenance for t in c.targets if t.record]
    versions = ""
    if provs:
        p = provs[0]
        versions = f", Python {p.python}, torch {p.torch}, lightning {p.lightning}"
    hidden = [p.cuda_visible_devices == "" and p.cuda_available is False for p in provs]
    gpu = ", CPU only (GPU hidden in every target)" if hidden and all(hidden) else ", GPU NOT hidden in every target" if provs else ""
    return f"`{sha}` ({dirty}, {src}){versions}{gpu}"


def render_summary(c: Collation, risks: list[Risk], datasets: list[DatasetNote], *, blocker_written: bool) -> str:
    """The full markdown text of summary.md."""
    n_green = sum(t.verdict == GREEN for t in c.targets)
    total = sum(t.duration_s or 0.0 for t in c.targets)
    plan_link = f"[{Path(c.plan_rel).name}]({_link(c, c.plan_rel)})"
    lines = [
        f"# Evidence summary: {c.plan_id} — {c.timestamp}",
        "",
        f"**Overall verdict: {c.overall}** — {c.overall_reason}",
        "",
        f"- Targets: {n_green}/{len(c.targets)} GREEN; summed target time {fmt_duration(total)} "
        f"(UTC {_wall_span(c)}).",
        f"- Plan: {plan_link} (sha256 `{c.plan_sha256[:16]}…`); hub `{c.hub_rel}`; collated {c.collated_utc}.",
    ]
    lines.append(f"- Code and environment: {_code_line(c)}.")
    if blocker_written:
        lines.append("- Blocker details: [blocker.log](blocker.log).")
    lines += ["- Integrity: [manifest.json](manifest.json) lists every file with its sha256; "
              f"re-check with `python -m harness validate {c.hub_rel}`.", ""]
    lines += _targets_section(c)
    lines += _smoke_section(c)
    lines += _dataset_section(datasets)
    lines += _environment_section(c)
    lines += _risks_section(risks)
    lines += ["## Reproduce", "", f"`make reproduce FROM={c.hub_rel}` reruns this plan into a new hub and "
              "compares the two.", ""]
    return "\n".join(lines)
