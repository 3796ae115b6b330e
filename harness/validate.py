"""`python -m harness validate <hub>`: re-check a collated hub at any later time, wherever it is.

Every file the manifest lists must be there with its size and sha256, nothing may have been
added, and the records, logs, summary, JUnit file and manifest must tell the same story. Paths
are hub-relative (format 2), so a copied hub validates by itself; bulky files outside it are
checked when present and otherwise reported as "not present here" unless `--require-artifacts`.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from harness.context import HOME, project_root_of, resolve_plan
from harness.fsio import sha256_file
from harness.handmade import DERIVED, read_handmade
from harness.hubview import HubUnreadable
from harness.plan import load_plan
from harness.reporting import emit, fmt_bytes
from harness.schema import FileEntry, HubFiles, Manifest, SchemaError, Verdict, VerdictRecord

NOT_FINISHED = (str(Verdict.MISSING), str(Verdict.INTERRUPTED))


@dataclass
class ValidationResult:
    """Problems make a hub invalid; warnings are printed but do not fail it."""

    hub: Path
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    manifest: Manifest | None = None
    unreadable: bool = False  # no manifest, bad JSON or another schema: nothing else was checked
    verdict_problems: list[str] = field(default_factory=list)  # "X is not GREEN": sound hub, failed run

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def integrity_problems(self) -> list[str]:
        """Problems with the hub itself (files, hashes, consistency), verdicts aside: what compare gates on."""
        return [p for p in self.problems if p not in self.verdict_problems]

    def not_green(self, message: str) -> None:
        self.problems.append(message)
        self.verdict_problems.append(message)


def _check_entries(entries: tuple[FileEntry, ...], root: Path | None, result: ValidationResult,
                   on_absent: Callable[[FileEntry], None]) -> None:
    """Every listed file found under `root` must have its recorded size and sha256; `on_absent` gets the others."""
    for entry in entries:
        path = root / entry.path if root is not None else None
        if entry.missing:
            result.problems.append(f"{entry.path}: was already missing when the hub was collated")
        elif path is None or not path.is_file():
            on_absent(entry)
        elif (size := path.stat().st_size) != entry.bytes:
            result.problems.append(f"{entry.path}: size changed ({entry.bytes} bytes in manifest.json, {size} now)")
        elif sha256_file(path) != entry.sha256:
            result.problems.append(f"{entry.path}: content changed (sha256 differs from manifest.json)")


def _check_external(hub: Path, m: Manifest, mode: str, result: ValidationResult) -> None:
    """Bulky files outside the hub: hashed when present; absent ones summed up, or problems if required."""
    if mode == "hub-only" or not m.external:
        return
    absent: list[FileEntry] = []
    _check_entries(m.external, project_root_of(hub, m.hub), result, absent.append)
    if absent:
        size = fmt_bytes(sum(e.bytes or 0 for e in absent))
        text = f"{len(absent)} file(s) outside the hub, {size}, not present here (e.g. {absent[0].path})"
        if mode == "require":
            result.problems.append(text + "; --require-artifacts needs them")
        else:
            result.warnings.append(text + "; they are git-ignored bulky artifacts (--require-artifacts to insist)")


def _expected_targets(m: Manifest, hub: Path, home: Path, result: ValidationResult) -> list[tuple[str, str | None, str | None]]:
    """(name, log, verdict) of every target that must be in the hub: the plan's, when it is unchanged."""
    listed = {t.name: (t.name, t.log, t.verdict) for t in m.targets}
    plan_path = resolve_plan(m.plan.path, home, project_root_of(hub, m.hub)) if m.plan.path else None
    if plan_path is None or not plan_path.is_file():
        result.warnings.append(f"{m.plan.path}: plan file not found here; checking the targets the manifest lists")
        return list(listed.values())
    if sha256_file(plan_path) != m.plan.sha256:
        result.warnings.append(f"{m.plan.path}: plan file changed since this run; checking the targets the manifest lists")
        return list(listed.values())
    try:
        planned = load_plan(plan_path).targets
    except (ValueError, OSError) as exc:
        result.warnings.append(f"{m.plan.path}: plan does not load ({exc}); checking the targets the manifest lists")
        return list(listed.values())
    for t in planned:
        if t.name not in listed:
            result.problems.append(f"manifest.json: plan target {t.name!r} is not listed (manifest edited by hand?)")
    return [listed.get(t.name, (t.name, t.log, None)) for t in planned]


def _check_hub_files(hub: Path, m: Manifest, expected: list[tuple[str, str | None, str | None]],
                     result: ValidationResult) -> None:
    listed = {e.path: e for e in m.files}
    _check_entries(m.files, hub, result, lambda e: result.problems.append(
        f"{e.path}: missing (listed in manifest.json with {e.bytes} bytes)"))
    unselected = {t.name for t in m.targets if t.reason == "not selected in this run"}
    required: dict[str, tuple[str | None, str | None]] = {HubFiles.SUMMARY: (None, None), HubFiles.RUN: (None, None)}
    for name, log, verdict in expected:
        required |= {rel: (name, verdict) for rel in [HubFiles.verdict(name)] + ([log] if log else [])}
    for rel, (name, verdict) in required.items():
        path = hub / rel
        if not path.is_file() and rel not in listed:
            message = f"{rel}: expected file missing"
            if verdict in NOT_FINISHED:  # honest about it: the run failed, the hub is not damaged
                why = "not selected in this run" if name in unselected else "not finished"
                result.not_green(message + f" (its target is recorded as {why})")
            else:
                result.problems.append(message)
        elif path.is_file() and path.stat().st_size == 0:
            result.problems.append(f"{rel}: expected file is empty")
        elif path.is_file() and rel not in listed:
            result.problems.append(f"{rel}: expected file not listed in manifest.json")
    for path in sorted(p for p in hub.rglob("*") if p.is_file()):
        rel = path.relative_to(hub).as_posix()
        if rel not in HubFiles.UNLISTED and rel not in listed and rel not in required:
            result.problems.append(f"{rel}: in the hub but not listed in manifest.json (added after collate?)")


def _check_verdicts(hub: Path, m: Manifest, expected: list[tuple[str, str | None, str | None]],
                    result: ValidationResult) -> None:
    verdict_of = {name: verdict for name, _, verdict in expected}
    for name, _, verdict in expected:
        if verdict != Verdict.GREEN:
            result.not_green(f"manifest.json: target {name!r} is {verdict}, not GREEN")
        record_path = hub / HubFiles.verdict(name)
        if record_path.is_file() and record_path.stat().st_size:
            try:
                record = VerdictRecord.load(record_path)
            except SchemaError as exc:
                result.problems.append(str(exc))
                continue
            downgraded = verdict in NOT_FINISHED or (verdict == Verdict.RED and record.verdict == Verdict.GREEN)
            if record.verdict != verdict and not downgraded:  # collate may only downgrade a record
                result.problems.append(f"manifest.json: target {name!r} is {verdict} but {HubFiles.verdict(name)} "
                                       f"says {record.verdict} (manifest edited by hand?)")
    green = bool(expected) and all(v == Verdict.GREEN for v in verdict_of.values()) and m.complete \
        and not any(m.src_changes.values()) and not m.partial_run
    if m.overall_verdict != Verdict.GREEN:
        result.not_green(f"manifest.json: overall verdict is {m.overall_verdict}, not GREEN")
    elif not green:
        result.problems.append(f"manifest.json: overall verdict GREEN contradicts its targets/production-code checks")
    for entry in m.files + m.external:
        if entry.target in verdict_of and entry.verdict != verdict_of[entry.target]:
            result.problems.append(f"manifest.json: {entry.path} has verdict {entry.verdict} but its target "
                                   f"{entry.target!r} is {verdict_of[entry.target]}")


_FOOTER = re.compile(r"^# verdict: (\S+) - ")
_SUMMARY = re.compile(r"^\*\*Overall verdict: (\S+)\*\*")


def _check_story(hub: Path, m: Manifest, expected: list[tuple[str, str | None, str | None]],
                 result: ValidationResult) -> None:
    """Every file must tell the same story: a record made GREEN by hand still has its RED log footer.

    (A forger who rewrites every file consistently is caught only by rerunning: `reproduce`.)
    """
    for name, log, _ in expected:
        record_path, log_path = hub / HubFiles.verdict(name), hub / str(log)
        if not (log and record_path.is_file() and log_path.is_file()):
            continue
        footer = [m_.group(1) for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-8:]
                  if (m_ := _FOOTER.match(line))]
        try:
            recorded = VerdictRecord.load(record_path).verdict
        except SchemaError:
            continue
        if footer and footer[-1] != recorded:
            result.problems.append(f"{HubFiles.verdict(name)}: says {recorded} but {log} ends with verdict {footer[-1]} "
                                   "(a record edited by hand?)")
    summary = hub / HubFiles.SUMMARY
    said = [m_.group(1) for line in summary.read_text(encoding="utf-8", errors="replace").splitlines()[:8]
            if (m_ := _SUMMARY.match(line))] if summary.is_file() else []
    if said and said[0] != m.overall_verdict:
        result.problems.append(f"{HubFiles.SUMMARY}: says {said[0]} but manifest.json says {m.overall_verdict} "
                               "(edited by hand?)")
    junit = hub / HubFiles.JUNIT
    if junit.is_file():
        failures = re.search(r'failures="(\d+)"', junit.read_text(encoding="utf-8", errors="replace"))
        bad = sum(v != Verdict.GREEN for _, _, v in expected) + (m.overall_verdict != Verdict.GREEN)
        if failures and int(failures.group(1)) != bad:
            result.problems.append(f"{HubFiles.JUNIT}: counts {failures.group(1)} failure(s), the manifest {bad} "
                                   "(edited by hand?)")


def validate(hub: str | Path, *, mode: str = "default", ignore_incomplete: bool = False, home: Path = HOME) -> ValidationResult:
    """Re-check a collated hub; every problem names a path and what is wrong with it.

    `mode`: "default" (absent external files are a warning), "require" (a problem) or
    "hub-only" (external files are not looked at). `ignore_incomplete` is for collate itself.
    """
    hub = Path(hub).expanduser().resolve()
    result = ValidationResult(hub=hub)
    if not hub.is_dir():
        what = "does not exist" if not hub.exists() else "is a file, not a hub folder"
        result.problems.append(f"{hub} {what} (pass the hub folder that holds manifest.json)")
        result.unreadable = True
        return result
    if (hub / HubFiles.INCOMPLETE).exists() and not ignore_incomplete:
        result.problems.append(f"{HubFiles.INCOMPLETE}: the run was interrupted or never collated")
    try:
        m = Manifest.load(hub)
    except FileNotFoundError:
        result.problems.append(f"{HubFiles.MANIFEST}: missing — the hub was not collated, or was made by hand; "
                               f"run `python -m harness collate {hub}` if its targets finished")
        result.unreadable = True
        return result
    except SchemaError as exc:
        result.problems.append(f"{exc}; recollate with `python -m harness collate {hub}`")
        result.unreadable = True
        return result
    result.manifest = m
    expected = _expected_targets(m, hub, home, result)
    _check_hub_files(hub, m, expected, result)
    _check_external(hub, m, mode, result)
    _check_verdicts(hub, m, expected, result)
    _check_story(hub, m, expected, result)
    return result


def integrity_problems(hub: Path) -> list[str]:
    """What is wrong with a hub's files and records, its verdicts aside (compare's and re-collate's gate)."""
    return validate(hub, mode="hub-only", ignore_incomplete=True).integrity_problems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Re-check a collated hub: every file present with its recorded size and sha256, all GREEN."
    parser.add_argument("hub", type=Path, help="hub folder (holds manifest.json)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--require-artifacts", action="store_true",
                       help="bulky files outside the hub (git-ignored artifacts/) must be present too")
    group.add_argument("--hub-only", action="store_true", help="check only the files inside the hub")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def handmade_report(hub: Path, fmt: str) -> int:
    """A teammate's hand-made hub: nothing to check its bytes against, so show what its logs say."""
    try:
        view = read_handmade(hub)
    except HubUnreadable as exc:
        emit(fmt, "validate", {"hub": str(hub), "valid": False, "problems": exc.problems, "exit_code": 2},
             "\n".join(f"problem: {p}" for p in exc.problems))
        return 2
    ok = view.overall == Verdict.GREEN and not view.notes
    lines = [f"{hub}: hand-made hub (no manifest: its files cannot be checked for changes); verdicts {DERIVED}:"]
    lines += [f"  {name}: {r.verdict} - {r.reason}" for name, r in view.verdicts.items()]
    lines += [f"problem: {note}" for note in view.notes] + [f"overall: {view.overall} - {view.overall_reason}"]
    emit(fmt, "validate", {"hub": str(hub), "valid": ok, "handmade": True, "exit_code": 0 if ok else 1,
                           "targets": {n: {"verdict": str(r.verdict), "reason": r.reason} for n, r in view.verdicts.items()},
                           "problems": list(view.notes)}, "\n".join(lines))
    return 0 if ok else 1


def main(args: argparse.Namespace) -> int:
    """Exit 0 when valid, 1 when problems were found, 2 when the hub has no readable manifest."""
    hub = Path(args.hub).expanduser()
    if hub.is_dir() and not (hub / HubFiles.MANIFEST).exists() and not (hub / HubFiles.RUN).exists():
        return handmade_report(hub.resolve(), args.format)
    mode = "require" if args.require_artifacts else "hub-only" if args.hub_only else "default"
    result = validate(args.hub, mode=mode)
    code = 0 if result.ok else 2 if result.unreadable else 1
    n = len(result.manifest.files) + len(result.manifest.external) if result.manifest else 0
    status = f"valid ({n} files, overall GREEN)" if result.ok else f"INVALID ({len(result.problems)} problem(s))"
    lines = [f"warning: {w}" for w in result.warnings] + [f"problem: {p}" for p in result.problems]
    emit(args.format, "validate", {"hub": str(result.hub), "valid": result.ok, "problems": result.problems,
                                   "warnings": result.warnings, "exit_code": code},
         "\n".join(lines + [f"{result.hub}: {status}"]))
    return code
