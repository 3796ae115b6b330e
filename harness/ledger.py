"""Update the project's ledger after a collated run: plan row `[x]` (GREEN) or `[P]`, and one fix-plan attempt.

Once per hub (`<!-- hub: … -->`); both files change or neither, their other bytes kept; a missing file is an error."""

from __future__ import annotations

import codecs
import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from harness import UserError
from harness.collation import Collation
from harness.fsio import atomic_write_bytes
from harness.reporting import fmt_duration, md_link, md_text, relative_link
from harness.schema import HubFiles, Verdict

STATE_DONE, STATE_PENDING = "[x]", "[P]"
_STATE_RE = re.compile(r"^\[( |P|x|X)\]$")
_LIST_RE = re.compile(r"^(\s*[-*]\s+)\[( |P|x|X)\](\s+.*)$")
_ATTEMPT_RE = re.compile(r"\bAttempt #(\d+)\b")
_HEADING_RE = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
ATTEMPTS_HEADING = "Attempts History"
_FIXES = {errno.EACCES: "fix the permissions", errno.EPERM: "fix the permissions (or the immutable flag, `chattr -i`)",
          errno.ENOSPC: "free some disk space", errno.EDQUOT: "free some disk space",
          errno.EROFS: "make the file system writable"}


class LedgerError(UserError, ValueError):
    """The plan or fix-plan file does not have the structure the ledger update needs."""


def hub_marker(hub_rel: str) -> str:
    """The comment that ties an attempt to its hub (the idempotency key)."""
    return f"<!-- hub: {md_text(hub_rel)} -->"


def set_row_state(text: str, row: str, state: str, evidence: str | None = None, *, source: str = "plan") -> str:
    """`text` with the one table row (a cell equal to `row`; last cell `evidence`) or `- [P] B3` line set to `state`."""
    if not _STATE_RE.match(state):
        raise ValueError(f"state {state!r} must be one of [ ], [P], [x]")
    lines = text.splitlines(keepends=True)
    hits: list[int] = []
    for i, line in enumerate(lines):
        body = line.rstrip("\r\n")
        ending = line[len(body):]
        if body.lstrip().startswith("|"):
            cells = body.strip().strip("|").split("|")
            at = next((j for j, c in enumerate(cells) if _STATE_RE.match(c.strip())), None)
            if at is None or not any(c.strip().strip("*`").strip() == row for c in cells):
                continue
            hits.append(i)
            cells[at] = f" {state} "
            if evidence is not None and len(cells) - 1 > at:
                cells[-1] = f" {evidence} "
            lines[i] = f"{body[: len(body) - len(body.lstrip())]}|{'|'.join(cells)}|{ending}"
        elif (m := _LIST_RE.match(body)) and re.match(rf"\s+[*_`]*{re.escape(row)}[*_`]*(?![\w.])", m.group(3)):
            hits.append(i)
            lines[i] = f"{m.group(1)}{state}{m.group(3)}{ending}"
    if len(hits) != 1:
        where = "no line" if not hits else f"{len(hits)} lines ({', '.join(str(h + 1) for h in hits)})"
        raise LedgerError(f"{source}: {where} hold row {row!r} with a state cell [ ]/[P]/[x]; "
                          "keep exactly one table row or checklist line for it")
    return "".join(lines)


def _attempts_section(lines: list[str], initiative: str | None, source: str) -> tuple[int, int]:
    """(first, end) line indices of the Attempts History section body to append to."""
    found = [_HEADING_RE.match(line.rstrip("\r\n")) for line in lines]
    headings = [(i, len(m[1]), m[2]) if m else (i, 0, "") for i, m in enumerate(found)]  # (index, level, title)
    starts = [(i, level) for i, level, title in headings if level and title.strip().lower() == ATTEMPTS_HEADING.lower()]
    if not starts:
        raise LedgerError(f"{source}: no '## {ATTEMPTS_HEADING}' heading to append the attempt to; add one")
    if len(starts) > 1:
        if not initiative:
            raise LedgerError(f"{source}: several '{ATTEMPTS_HEADING}' sections and no initiative to choose one")
        # A section belongs to the nearest heading above it of a higher level, e.g. `# [ADR-003-BACKEND-API]`.
        starts = [(i, level) for i, level in starts
                  if f"[{initiative}]" in next((t for _, lv, t in reversed(headings[:i]) if 0 < lv < level), "")]
        if len(starts) != 1:
            raise LedgerError(f"{source}: cannot tell which '{ATTEMPTS_HEADING}' belongs to [{initiative}] "
                              f"({len(starts)} candidates); put it under a heading containing [{initiative}]")
    start, level = starts[0]
    end = next((i for i, lv, _ in headings[start + 1:] if 0 < lv <= level), len(lines))
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    return start, end


def next_attempt_number(text: str, initiative: str | None = None, *, source: str = "fix_plan") -> int:
    """One more than the highest `Attempt #N` of the initiative's Attempts History (else 1)."""
    lines = text.splitlines(keepends=True)
    start, end = _attempts_section(lines, initiative, source)
    return max(map(int, _ATTEMPT_RE.findall("".join(lines[start:end]))), default=0) + 1


def append_attempt(text: str, entry: str, initiative: str | None = None, *, source: str = "fix_plan") -> str:
    """Return `text` with `entry` (markdown lines) appended at the end of Attempts History."""
    newline = found.group() if (found := re.search(r"\r?\n", text)) else "\n"  # the first line's, CRLF or LF
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += newline
    _, end = _attempts_section(lines, initiative, source)
    block = entry.rstrip("\n").replace("\n", newline) + newline
    if end < len(lines) and lines[end].strip():
        block += newline
    return "".join(lines[:end]) + block + "".join(lines[end:])


@dataclass(frozen=True)
class LedgerFile:
    """A ledger document as found: `text` without its BOM, line endings untouched; `raw`, to put it back exactly."""
    path: Path
    rel: str
    raw: bytes
    text: str

    @classmethod
    def read(cls, root: Path, rel: str) -> LedgerFile:
        raw = (root / rel).read_bytes()
        try:
            return cls(root / rel, rel, raw, raw.removeprefix(codecs.BOM_UTF8).decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise LedgerError(f"{rel}: not UTF-8 (byte {exc.start}); save it as UTF-8 and rerun collate") from exc

    def encode(self, text: str) -> bytes:
        """`text` as this file's bytes: UTF-8, with a BOM if the file had one."""
        return codecs.BOM_UTF8 * self.raw.startswith(codecs.BOM_UTF8) + text.encode("utf-8")


def _require_files(root: Path, files: dict[str, str]) -> None:
    """Raise `LedgerError` naming each of `files` ({path: what}) that is missing or a directory."""
    if bad := [f"{what} {rel} " + ("is a directory, not a file," if (root / rel).is_dir() else "not found")
               for rel, what in files.items() if not (root / rel).is_file()]:
        raise LedgerError(f"{' and '.join(bad)} in {root}; create {'it' if len(bad) == 1 else 'them'} "
                          "or pass --no-ledger")


def _write_all_or_nothing(changes: list[tuple[LedgerFile, str]], hub_rel: str) -> None:
    """Write each file's new text in turn; if one write fails, put back those already written, byte for byte."""
    for i, (failed, text) in enumerate(changes):
        try:
            atomic_write_bytes(failed.path, failed.encode(text))
        except BaseException as exc:
            why = os.strerror(exc.errno) if getattr(exc, "errno", None) else type(exc).__name__
            for doc, _ in changes[:i]:
                try:
                    atomic_write_bytes(doc.path, doc.raw)
                except OSError as undo:
                    raise LedgerError(f"cannot write {failed.rel} ({why}) nor put {doc.rel} back "
                                      f"({os.strerror(undo.errno or 0)}): {doc.rel} holds the new text; undo that "
                                      "by hand, fix the cause and rerun collate") from exc
            if not isinstance(exc, OSError):
                raise
            others = ", ".join(doc.rel for doc, _ in changes if doc is not failed)
            raise LedgerError(f"cannot write {failed.rel} ({why}); {others} left unchanged; "
                              f"{_FIXES.get(exc.errno or 0, 'fix the cause')} and rerun "
                              f"`python -m harness collate {hub_rel}`") from exc


@dataclass(frozen=True)
class AttemptLinks:
    """Files an attempt links to, as paths relative to the project root."""
    summary: str
    logs: tuple[str, ...]
    blocker: str | None = None


@dataclass(frozen=True)
class LedgerUpdate:
    """What the ledger step did (for the collate printout and the tests)."""
    plan_file: Path
    fix_plan: Path
    row: str
    state: str
    attempt: int | None
    skipped_reason: str | None = None


def _md_link(rel: str, from_file: str) -> str:
    """A Markdown link to `rel` from within `from_file` (both relative to the project root)."""
    return md_link(Path(rel).name, relative_link(rel, Path(from_file).parent))


def _initiative(plan_file_rel: str) -> str | None:
    """The folder after `plans/active/` in the plan file's path."""
    parts = Path(plan_file_rel).parts
    return next((parts[i + 1] for i in range(1, len(parts) - 1) if parts[i - 1:i + 1] == ("plans", "active")), None)


def record_attempt(project_root: Path, *, plan_file: str, fix_plan: str, row: str, hub_rel: str, timestamp: str,
                   green: bool, headline: str, details: list[str], links: AttemptLinks) -> LedgerUpdate:
    """Apply one hub's outcome (paths relative to `project_root`): row state, evidence link, one attempt; once a hub."""
    plan_path, fix_path = project_root / plan_file, project_root / fix_plan
    _require_files(project_root, {plan_file: "plan file", fix_plan: "fix plan"})
    # Lock a file beside the fix plan, not the plan itself: atomic writes replace its inode.
    with FileLock(str(fix_path.parent / f".{fix_path.name}.lock")):  # each collate gets its own number
        state = STATE_DONE if green else STATE_PENDING
        plan_doc, fix_doc = LedgerFile.read(project_root, plan_file), LedgerFile.read(project_root, fix_plan)
        if (marker := hub_marker(hub_rel)) in fix_doc.text:
            return LedgerUpdate(plan_path, fix_path, row, state, None, f"{hub_rel} is already recorded in {fix_plan}")
        evidence = (f"{_md_link(links.summary if green else (links.blocker or links.summary), plan_file)} "
                    f"({'GREEN' if green else 'blocked'}, {md_text(timestamp)})")
        new_plan = set_row_state(plan_doc.text, row, state, evidence, source=str(plan_path))
        initiative = _initiative(plan_file)
        number = next_attempt_number(fix_doc.text, initiative, source=str(fix_path))
        evidence_links = ", ".join(_md_link(p, fix_plan) for p in (links.summary, links.blocker) if p)
        logs = ", ".join(_md_link(p, fix_plan) for p in links.logs)
        entry = [f"- [{md_text(timestamp)}] Attempt #{number} — {headline} {marker}", *(f"  - {d}" for d in details),
                 f"  - Row {row} → `{state}`. Evidence: {evidence_links}; logs: {logs}."]
        new_fix = append_attempt(fix_doc.text, "\n".join(entry), initiative, source=str(fix_path))
        _write_all_or_nothing([(plan_doc, new_plan), (fix_doc, new_fix)], hub_rel)
        return LedgerUpdate(plan_path, fix_path, row, state, number)


def _ledger_text(c: Collation) -> tuple[str, list[str]]:
    """The attempt's headline and one detail line per target."""
    headline = (f"{c.ctx.plan.id} evidence: **GREEN** ({c.n_green}/{len(c.targets)} targets)." if c.green
                else f"{c.ctx.plan.id} evidence: **BLOCKED** ({c.overall}: {md_text(c.overall_reason)})")
    details = []
    for t in c.targets:
        counts = "" if t.counts is None else f", {t.counts.passed}/{t.counts.tests} passed"
        part, rec = f"`{t.name}` {t.verdict}{counts}, {fmt_duration(t.duration_s)}", t.train_record
        if isinstance(rec.get("final_train_loss"), (int, float)):
            part += f"; final loss {rec['final_train_loss']:.6g} after {rec.get('epochs')} epoch(s)"
        if isinstance((rec.get("shapes") or {}).get("diffraction"), list):
            part += f", diffraction {tuple(rec['shapes']['diffraction'])}"
        details.append(part + ("" if t.verdict == Verdict.GREEN else f" — {md_text(t.reason)}") + ".")
    run = c.hub.run
    details.append(f"Code `{(run.project_commit or 'unknown')[:12]}` ({'dirty' if run.git.dirty else 'clean'} tree "
                   f"at start); hub `{c.hub_rel}`.")
    return headline, details


def apply_ledger(c: Collation, blocker: Path | None) -> tuple[LedgerUpdate | None, str]:
    """Collate's ledger step, or one line why it was left alone; `LedgerError` (neither file changed) if impossible."""
    spec = c.ctx.plan.ledger
    if c.interrupted:
        return None, "ledger untouched: the run was interrupted (hub stays INCOMPLETE)"
    if c.partial_run:
        return None, "ledger untouched: this run selected only part of the plan"
    if not spec.complete:
        return None, f"ledger untouched: {c.ctx.plan_label} has no complete [ledger] table (plan_file, row, fix_plan)"
    headline, details = _ledger_text(c)
    links = AttemptLinks(summary=f"{c.hub_rel}/{HubFiles.SUMMARY}",
                         logs=tuple(f"{c.hub_rel}/{t.log}" for t in c.targets if t.log_present),
                         blocker=f"{c.hub_rel}/{HubFiles.BLOCKER}" if blocker else None)
    update = record_attempt(c.ctx.project, plan_file=str(spec.plan_file), fix_plan=str(spec.fix_plan),
                            row=str(spec.row), hub_rel=c.hub_rel, timestamp=c.hub.timestamp, green=c.green,
                            headline=headline, details=details, links=links)
    if update.skipped_reason:
        return update, f"ledger unchanged: {update.skipped_reason}"
    return update, f"ledger: row {update.row} → {update.state}, Attempt #{update.attempt} appended to {spec.fix_plan}"
