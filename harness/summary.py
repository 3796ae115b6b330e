"""The reviewer's files of a collated hub: `summary.md` (with its remaining risks), `blocker.log`, `junit.xml`.
summary.md shows verdict, targets and pictures on its first screen; its links are relative to the hub."""

from __future__ import annotations

import json
import shlex
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.collation import Collation, TargetResult, changed_files
from harness.fsio import atomic_write_bytes, sha256_file
from harness.reporting import Markdown, fmt_duration, md_block, md_code, md_link, md_table, md_text
from harness.schema import EnvironmentRecord, HubFiles, Verdict

BLOCKER, WARNING = "blocker", "warning"  # remaining risks, derived from what the run left (never typed by hand)
SLOW_FRACTION = 0.5  # a target that used at least this fraction of its timeout is flagged as slow
BLOCKER_TAIL_LINES = 40
_EXAMPLE_CHARS = 160
_ENV_KEYS = ("python", "torch", "lightning", "numpy", "platform")


@dataclass(frozen=True)
class Risk:
    """One risk line: its severity and a sentence."""
    severity: str
    text: str


@dataclass(frozen=True)
class WarningScan:
    """DeprecationWarning lines of one log: how many and the first one."""
    log: str
    count: int
    first: str


def scan_deprecations(log_path: Path) -> WarningScan | None:
    """Count lines mentioning DeprecationWarning in a log (None when there are none)."""
    if not log_path.is_file():
        return None
    with log_path.open(encoding="utf-8", errors="replace") as handle:
        found = [line.strip() for line in handle if "DeprecationWarning" in line]
    if not found:
        return None
    first = found[0][: _EXAMPLE_CHARS - 1] + "…" if len(found[0]) > _EXAMPLE_CHARS else found[0]
    return WarningScan(log_path.name, len(found), first)


@dataclass(frozen=True)
class DatasetNote:
    """The data a command target trained on, from its TRAIN_RECORD (hashed here if the record lacks it)."""
    target: str
    file: str
    sha256: str | None
    computed: bool
    sidecar_sha256: str | None
    record: dict[str, Any]


def dataset_notes(c: Collation) -> list[DatasetNote]:
    notes = []
    for t in c.targets:
        rec = t.train_record
        if not (file := rec.get("train_data_file")):
            continue
        path = c.ctx.path(file)
        sha = rec.get("train_data_sha256") or (sha256_file(path) if path.is_file() else None)
        try:
            sidecar = json.loads(path.with_suffix(".json").read_text(encoding="utf-8")).get("sha256")
        except (OSError, ValueError, AttributeError):
            sidecar = None
        notes.append(DatasetNote(t.name, str(file), sha, not rec.get("train_data_sha256"), sidecar, rec))
    return notes


def derive_risks(c: Collation) -> list[Risk]:
    """All risks of a hub, blockers first, in a stable order."""
    run, blockers, warnings = c.hub.run, [], []
    if c.interrupted:
        blockers.append("The run was interrupted: a target left its log as `.partial`; the hub stays INCOMPLETE and "
                        "the ledger was not touched.")
    if c.partial_run:
        warnings.append(f"A partial hub: {len(c.targets)} of the plan's {len(c.ctx.plan.targets)} targets "
                        f"({', '.join(t.name for t in c.targets)}); its verdict covers those only, and it never "
                        "updates the ledger.")
    blockers += [f"`{t.name}` is {t.verdict}: {t.reason}" for t in c.targets if t.verdict != Verdict.GREEN]
    changed = changed_files(c.production_changes)
    if changed:
        phases = ", ".join(phase for phase, files in c.production_changes.items() if files)
        blockers.append(f"Production files differ from HEAD ({phases}): {', '.join(f'`{f}`' for f in changed)}; "
                        "evidence-only runs must not change production code.")
    if not run.git.known:
        blockers.append(f"The checkout is not a git repository: commit {run.project_commit or 'unknown'} "
                        f"({run.commit_source}); the production-code guard was not checked.")
    blockers += [f"validate: {p}" for p in c.validation_problems]
    blockers += [f"Unreadable verdict record: {e}" for e in c.record_errors]
    warnings += [f"Verdict record for `{x}`, which is not a target of the plan (ignored)." for x in c.extra_records]
    if c.plan_changed:
        warnings.append(f"The plan file `{c.ctx.plan_label}` changed since the run started (sha256 differs from "
                        "run.json); the summary uses the current file.")
    records = [t.record for t in c.targets if t.record]
    dirty = sorted(set(run.git.dirty_files).union(*(r.provenance.git.dirty_files for r in records)))
    if dirty:
        warnings.append(f"The working tree was dirty (tracked files differ from HEAD): "
                        f"{', '.join(f'`{f}`' for f in dirty[:10])}"
                        + (f" and {len(dirty) - 10} more" if len(dirty) > 10 else "") + ".")
    shas = sorted({r.provenance.git.sha for r in records if r.provenance.git.known}
                  | ({run.git.sha} if run.git.known else set()))
    if len(shas) > 1:
        warnings.append(f"Targets ran on different commits ({', '.join(s[:12] for s in shas)}): HEAD moved.")
    for t in c.targets:
        r = t.record.provenance.runtime if t.record else None
        if r and (r.cuda_available or r.cuda_visible_devices not in ("", None)):
            warnings.append(f"`{t.name}`: GPU not hidden (CUDA_VISIBLE_DEVICES={r.cuda_visible_devices!r}, "
                            f"cuda_available={r.cuda_available}).")
    for t in c.targets:
        if t.log_present and (scan := scan_deprecations(c.hub.path / t.log)):
            warnings.append(f"`{scan.log}`: {scan.count} DeprecationWarning line(s); first: `{scan.first}`")
        if t.duration_s is not None and t.duration_s >= SLOW_FRACTION * t.target.timeout:
            warnings.append(f"`{t.name}` took {fmt_duration(t.duration_s)}, {t.duration_s / t.target.timeout:.0%} "
                            f"of its {fmt_duration(t.target.timeout)} timeout: a slower machine may time out.")
    for note in dataset_notes(c):
        if note.sha256 is None:
            warnings.append(f"Dataset `{note.file}` of `{note.target}` has no sha256 and is not on disk to hash.")
        elif note.sidecar_sha256 and note.sidecar_sha256 != note.sha256:
            warnings.append(f"Dataset `{Path(note.file).name}` sha256 {note.sha256[:12]}… does not match its "
                            f"sidecar ({note.sidecar_sha256[:12]}…): the fixture changed.")
    return [Risk(BLOCKER, text) for text in blockers] + [Risk(WARNING, text) for text in warnings]


def display_command(c: Collation, t: TargetResult) -> str:
    """The selector, or the command line with the interpreter and project root shortened."""
    if t.kind == "pytest":
        return t.target.selector or ""
    argv, root = t.record.argv if t.record and t.record.argv else t.target.argv, str(c.ctx.project) + "/"
    return shlex.join(["python" if i == 0 and Path(a).name.startswith("python") else a.replace(root, "")
                       for i, a in enumerate(argv)])


def _counts(t: TargetResult) -> str:
    if (c := t.counts) is None:
        return "n/a (command)" if t.kind == "command" and t.record else "—"
    text = f"{c.passed} / {c.failed + c.errors} / {c.skipped + c.xfailed}"
    return text + (f" ({c.xpassed} XPASS)" if c.xpassed else "") + (f" ({c.errors} errors)" if c.errors else "")


def _log_link(c: Collation, t: TargetResult) -> str:
    if t.log_present:
        return md_link(t.log, t.log)
    if (c.hub.path / f"{t.log}.partial").is_file():
        return Markdown(md_link(f"{t.log}.partial", f"{t.log}.partial") + " (unfinished)")
    return f"{t.log} (missing)"


def figures_section(c: Collation) -> list[str]:
    """The pictures every target copied into the hub, inline; or why there are none."""
    pictures = [(t.name, f) for t in c.targets if t.record for f in t.record.figures]
    if pictures:
        return [" ".join(md_link(f"{name}: {Path(f).stem}", f, image=True) for name, f in pictures), ""]
    declared = [t.name for t in c.targets if t.target.figures]
    why = f"declared by {', '.join(declared)} but not produced" if declared else "the plan declares none"
    return [f"_No pictures: {why}._", ""]


def _smoke_rows(t: TargetResult, rec: dict[str, Any]) -> list[list[Any]]:
    loss = rec.get("final_train_loss")
    rows = [["Verdict", f"**{t.verdict}** (exit code {t.record.exit_code if t.record else None})"],
            ["Training time (CLI)", fmt_duration(rec.get("wall_seconds"))], ["Epochs", rec.get("epochs")],
            ["Final train loss", f"{loss:.6g}" if isinstance(loss, (int, float)) else loss],
            ["Batch size", rec.get("batch_size")]]
    rows += [[k.capitalize(), md_code(rec[k])] for k in ("bundle", "checkpoint") if rec.get(k)]
    return rows + [[f"`{k}` shape", "(" + ", ".join(map(str, v)) + ")"] for k, v in (rec.get("shapes") or {}).items()]


def _details(c: Collation) -> list[str]:
    out = ["## Commands", ""]
    for t in c.targets:
        out += [f"`{t.name}` ({t.kind}, timeout {t.target.timeout:g} s):", "", md_block(display_command(c, t)), ""]
    for t in c.targets:
        if t.kind == "command" and (t.train_record or t.record):
            out += [f"## CLI smoke: `{t.name}`", "", md_table(_smoke_rows(t, t.train_record), ["Quantity", "Value"])
                    if t.train_record else f"No training record (the command printed no `TRAIN_RECORD` line); see "
                    f"{md_link(t.log, t.log)}.", ""]
    rows = [[d.target, md_code(d.file), Markdown(md_code(d.sha256) + " (computed)" * d.computed) if d.sha256
             else "file missing", ("yes" if d.sidecar_sha256 == d.sha256 else "**NO**") if d.sidecar_sha256
             else "no sidecar", d.record.get("n_patterns"), d.record.get("n_groups"), d.record.get("gridsize")]
            for d in dataset_notes(c)]
    headers = ["Target", "File", "sha256", "Matches sidecar", "Patterns", "Groups", "gridsize"]
    return out + (["## Dataset", "", md_table(rows, headers), ""] if rows else [])


def _where_ran(c: Collation) -> list[str]:
    """A merged hub: the machine, runner and interpreter of each target's part ([] for a one-machine hub)."""
    if not (c.hub.path / HubFiles.PARTS).is_dir():
        return []
    from harness.parts import origins  # only a merged hub has parts
    found = {o.target: o for o in origins(c.hub.path)}
    rows = []
    for t in c.targets:
        if (o := found.get(t.name)) is None:
            rows.append([t.name, f"no part ({t.verdict})", *["—"] * 6])
            continue
        rt, kept = o.environment.runtime if o.environment else None, f"{HubFiles.PARTS}/{t.name}/"
        commit = md_code((o.run.project_commit or "unknown")[:12])
        rows.append([t.name, o.run.host or "unknown", o.run.runner or "—", commit, rt.python if rt else "—",
                     rt.platform if rt else "—", o.run.created_utc, md_link(kept, kept)])
    return ["## Where each target ran", "", f"Merged from {len(found)} part(s), each one target run alone; each kept "
            "folder holds the part's run.json, environment.json and manifest.json.", "",
            md_table(rows, ["Target", "Host", "Runner", "Commit", "Python", "Platform", "Part started", "Kept"]), ""]


def _environment(c: Collation) -> list[str]:
    run, env = c.hub.run, EnvironmentRecord.load(c.hub.path)
    runtime = env.runtime if env else (c.targets[0].record.provenance.runtime if c.targets[0].record else None)
    commit = run.git.sha if run.git.known else f"{run.project_commit or 'unknown'} ({run.commit_source})"
    dirty = "unknown" if run.git.dirty is None else ", ".join(run.git.dirty_files) or "no"
    rows = [["Commit", md_code(commit)], ["Dirty tree (tracked files)", dirty],
            [f"Production code ({', '.join(c.ctx.plan.project.production)}) changed",
             ", ".join(changed_files(c.production_changes)) or "no"]]
    if runtime:
        rows += [[k, getattr(runtime, k)] for k in _ENV_KEYS]
        rows += [["GPU hidden", f'CUDA_VISIBLE_DEVICES="{runtime.cuda_visible_devices}", '
                                f"torch.cuda.is_available() = {runtime.cuda_available}"]]
    if env:
        rows.append(["Installed distributions", f"{len(env.packages)} (in `{HubFiles.ENVIRONMENT}`)"])
    return ["## Environment", "", md_table(rows, ["Field", "Value"]), ""]


def render_summary(c: Collation, *, blocker_written: bool) -> str:
    """The full Markdown text of summary.md."""
    rows = [[t.name, f"**{t.verdict}**", _counts(t), fmt_duration(t.duration_s), _log_link(c, t),
             (t.record.derived_from + ": " if t.record and t.record.derived_from else "") + t.reason]
            for t in c.targets]
    lines = [f"# Evidence summary: {c.ctx.plan.id} — {c.hub.timestamp}", "",
             f"**Overall verdict: {c.overall}** — {md_text(c.overall_reason)}", "",
             md_table(rows, ["Target", "Verdict", "Passed / failed / skipped", "Duration", "Log", "Reason"]), ""]
    lines += figures_section(c)
    lines += [f"- Targets: {c.n_green}/{len(c.targets)} GREEN; summed target time "
              f"{fmt_duration(sum(t.duration_s or 0 for t in c.targets))}.",
              f"- Plan: `{c.ctx.plan_label}` (sha256 `{c.ctx.plan.sha256[:16]}…`); hub `{c.hub_rel}`; "
              f"collated {c.collated_utc}."]
    if blocker_written:
        lines.append(f"- Blocker details: {md_link(HubFiles.BLOCKER, HubFiles.BLOCKER)}.")
    lines += [f"- Integrity: {md_link(HubFiles.MANIFEST, HubFiles.MANIFEST)} lists every file with its sha256; "
              f"re-check with `python -m harness validate {c.hub_rel}`.", ""]
    lines += _details(c) + _where_ran(c) + _environment(c)
    risks = derive_risks(c)
    lines += ["## Remaining risks", ""] + ([f"- {'**Blocker:**' if r.severity == BLOCKER else 'Warning:'} "
                                            f"{md_text(r.text)}" for r in risks] or ["None found."]) + [""]
    lines += ["## Reproduce", "", f"`make reproduce FROM={c.hub_rel}` reruns this plan into a new hub and compares."]
    return "\n".join(lines + [""])


def render_blocker(c: Collation) -> str:
    """blocker.log: what failed (selector or command), why, and the tail of its log."""
    out = [f"BLOCKED: {c.ctx.plan.id} {c.hub.timestamp}: overall {c.overall}", f"reason: {c.overall_reason}",
           f"hub: {c.hub_rel}", f"collated: {c.collated_utc}", ""]
    for t in (x for x in c.targets if x.verdict != Verdict.GREEN):
        out += [f"== {t.name}: {t.verdict} ==", f"{'selector' if t.kind == 'pytest' else 'command'}: "
                f"{display_command(c, t)}", f"reason: {t.reason}"]
        if (rec := t.record) is not None:
            out.append(f"exit code: {rec.exit_code}  timed out: {rec.timed_out}  duration: "
                       f"{fmt_duration(rec.duration_s)}")
            failed = [str(x.get("nodeid")) for x in rec.tests if x.get("outcome") != "passed"]
            out += ["not passed: " + ", ".join(failed)] if failed else []
        log = c.hub.path / (t.log if t.log_present else f"{t.log}.partial")
        tail = log.read_text(encoding="utf-8",
                             errors="replace").splitlines()[-BLOCKER_TAIL_LINES:] if log.is_file() else []
        out += ([f"--- last {len(tail)} lines of {log.name} ---", *tail, f"--- end of {log.name} ---"] if tail
                else [f"(no log: {t.log} not found)"]) + [""]
    for title, items in (("production code differs from HEAD (evidence-only loop)",
                          [f"{k}: {', '.join(v)}" for k, v in c.production_changes.items() if v]),
                         ("validate", c.validation_problems), ("unreadable verdict records", c.record_errors)):
        out += [f"== {title} ==", *items, ""] if items else []
    return "\n".join(out)


def write_junit(c: Collation) -> Path:
    """`junit.xml`: one test case per target, so any CI shows the evidence targets as tests."""
    failures = sum(t.verdict != Verdict.GREEN for t in c.targets) + (not c.green)
    root, classname = ET.Element("testsuites"), f"evidence.{c.ctx.plan.id}"
    suite = ET.SubElement(root, "testsuite", name=c.ctx.plan.id, tests=str(len(c.targets) + 1), failures=str(failures),
                          errors="0", skipped="0", time=f"{sum(t.duration_s or 0 for t in c.targets):.3f}",
                          timestamp=c.hub.timestamp)
    for t in c.targets:
        case = ET.SubElement(suite, "testcase", classname=classname, name=t.name, time=f"{t.duration_s or 0:.3f}")
        if t.verdict != Verdict.GREEN:  # a skip is not evidence: every non-GREEN verdict fails
            ET.SubElement(case, "failure", type=str(t.verdict), message=t.reason).text = f"{t.verdict}: {t.reason}"
        ET.SubElement(case, "system-out").text = f"verdict: {t.verdict}; log: {t.log}"
    # The hub's own verdict (production-code guard, validate) can fail with every target GREEN.
    overall = ET.SubElement(suite, "testcase", classname=classname, name="(overall verdict)", time="0")
    if not c.green:
        ET.SubElement(overall, "failure", type=str(c.overall), message=c.overall_reason).text = c.overall_reason
    return atomic_write_bytes(c.hub.path / HubFiles.JUNIT, b'<?xml version="1.0" encoding="utf-8"?>\n'
                              + ET.tostring(root, encoding="utf-8") + b"\n")
