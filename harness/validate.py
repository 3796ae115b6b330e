"""`python -m harness validate <hub>`: re-check a collated hub at any later time, wherever it is (paths are relative).

Every listed file must keep its size and sha256, none may be added, and records, logs, summary, JUnit file and
manifest must tell the same story; bulky files outside the hub are checked when present."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from harness.context import HOME, project_root_of, resolve_plan
from harness.fsio import inside, sha256_file
from harness.plan import load_plan
from harness.reporting import emit, fmt_bytes
from harness.logframe import read_frame, seal_problem
from harness.schema import FileEntry, HubFiles, Manifest, RunRecord, SchemaError, Verdict, VerdictRecord

NOT_FINISHED = (str(Verdict.MISSING), str(Verdict.INTERRUPTED), str(Verdict.NOT_RUN))
Expected = list[tuple[str, str | None, str | None]]  # (name, log, verdict) of every target the hub must hold


@dataclass
class ValidationResult:
    """Problems make a hub invalid; warnings are printed but do not fail it."""
    hub: Path
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    manifest: Manifest | None = None
    verdict_problems: list[str] = field(default_factory=list)  # "X is not GREEN": sound hub, failed run

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def unreadable(self) -> bool:
        """No manifest, bad JSON or another schema: nothing else was checked."""
        return self.manifest is None

    @property
    def integrity_problems(self) -> list[str]:
        """Problems with the hub itself (files, hashes, consistency), verdicts aside: what compare gates on."""
        return [p for p in self.problems if p not in self.verdict_problems]

    def not_green(self, message: str) -> None:
        self.problems.append(message)
        self.verdict_problems.append(message)


def _check_entries(entries: tuple[FileEntry, ...], root: Path, result: ValidationResult,
                   on_absent: Callable[[FileEntry], None]) -> None:
    """Every listed file found under `root` must have its recorded size and sha256; `on_absent` gets the others."""
    for entry in entries:
        if (path := inside(root, entry.path)) is None:
            result.problems.append(f"{entry.path}: leads outside {root} (an absolute path, '..' or a symlink); "
                                   "a hub may name only files inside itself or its project")
        elif entry.missing:
            result.problems.append(f"{entry.path}: was already missing when the hub was collated")
        elif not path.is_file():
            on_absent(entry)
        elif (size := path.stat().st_size) != entry.bytes:
            result.problems.append(f"{entry.path}: size changed ({entry.bytes} bytes in manifest.json, {size} now)")
        elif sha256_file(path) != entry.sha256:
            result.problems.append(f"{entry.path}: content changed (sha256 differs from manifest.json)")


def _check_external(hub: Path, m: Manifest, mode: str, result: ValidationResult, project: Path | None) -> None:
    """Bulky files outside the hub (in its project): hashed when present; absent ones summed up, or problems."""
    if mode == "hub-only" or not m.external:
        return
    absent: list[FileEntry] = []
    _check_entries(m.external, project or project_root_of(hub, m.hub) or hub / "(no project)", result, absent.append)
    if absent:
        size = fmt_bytes(sum(e.bytes or 0 for e in absent))
        text = f"{len(absent)} file(s) outside the hub, {size}, not present here (e.g. {absent[0].path})"
        if mode == "require":
            result.problems.append(text + "; --require-artifacts needs them")
        else:
            result.warnings.append(text + "; they are git-ignored bulky artifacts (--require-artifacts to insist)")


def _expected_targets(m: Manifest, hub: Path, home: Path, result: ValidationResult) -> Expected:
    """(name, log, verdict) of every target that must be in the hub: the plan's that the run selected."""
    listed = {t.name: (t.name, t.log, t.verdict) for t in m.targets}
    try:
        selected = set(RunRecord.load(hub).targets) or None
    except (OSError, SchemaError):
        selected = None  # reported by the file checks
    plan_path = resolve_plan(m.plan.path, home, project_root_of(hub, m.hub)) if m.plan.path else None
    why = "plan file not found here" if plan_path is None or not plan_path.is_file() else \
        "plan file changed since this run" if sha256_file(plan_path) != m.plan.sha256 else None
    try:
        planned = () if why else load_plan(plan_path).targets
    except (ValueError, OSError) as exc:
        why = f"plan does not load ({exc})"
    if why:
        result.warnings.append(f"{m.plan.path}: {why}; checking the targets the manifest lists")
        return list(listed.values())
    planned = tuple(t for t in planned if selected is None or t.name in selected)
    result.problems += [f"manifest.json: plan target {t.name!r} is not listed (manifest edited by hand?)"
                        for t in planned if t.name not in listed]
    return [listed.get(t.name, (t.name, t.log, None)) for t in planned]


def _check_hub_files(hub: Path, m: Manifest, expected: Expected, result: ValidationResult) -> None:
    listed = {e.path: e for e in m.files}
    _check_entries(m.files, hub, result, lambda e: result.problems.append(
        f"{e.path}: missing (listed in manifest.json with {e.bytes} bytes)"))
    required: dict[str, tuple[str | None, str | None]] = {HubFiles.SUMMARY: (None, None), HubFiles.RUN: (None, None)}
    for name, log, verdict in expected:
        required |= {rel: (name, verdict) for rel in [HubFiles.verdict(name)] + ([log] if log else [])}
    for rel, (name, verdict) in required.items():
        path = inside(hub, rel) or hub / "(outside the hub)"
        if not path.is_file() and rel not in listed:
            if verdict in NOT_FINISHED:  # honest about it: the run failed, the hub is not damaged
                result.not_green(f"{rel}: expected file missing (its target is recorded as {verdict})")
            else:
                result.problems.append(f"{rel}: expected file missing")
        elif path.is_file() and path.stat().st_size == 0:
            result.problems.append(f"{rel}: expected file is empty")
        elif path.is_file() and rel not in listed:
            result.problems.append(f"{rel}: expected file not listed in manifest.json")
    for path in sorted(hub.rglob("*")):
        rel = path.relative_to(hub).as_posix()
        if path.is_symlink():
            result.problems.append(f"{rel}: a symlink inside the hub (never followed: a hub holds its own files)")
        elif path.is_file() and rel not in HubFiles.UNLISTED and rel not in listed and rel not in required:
            result.problems.append(f"{rel}: in the hub but not listed in manifest.json (added after collate?)")


def _check_verdicts(hub: Path, m: Manifest, expected: Expected, result: ValidationResult) -> dict[str, VerdictRecord]:
    """Manifest, records and overall verdict must agree; returns the readable records by target."""
    verdict_of, records = {name: verdict for name, _, verdict in expected}, {}
    for name, _, verdict in expected:
        if verdict != Verdict.GREEN:
            result.not_green(f"manifest.json: target {name!r} is {verdict}, not GREEN")
        record_path = hub / HubFiles.verdict(name)
        if record_path.is_file() and record_path.stat().st_size:
            try:
                records[name] = record = VerdictRecord.load(record_path)
            except SchemaError as exc:
                result.problems.append(str(exc))
                continue
            downgraded = verdict in NOT_FINISHED or (verdict == Verdict.RED and record.verdict == Verdict.GREEN)
            if record.verdict != verdict and not downgraded:  # collate may only downgrade a record
                result.problems.append(f"manifest.json: target {name!r} is {verdict} but {HubFiles.verdict(name)} "
                                       f"says {record.verdict} (manifest edited by hand?)")
    green = bool(expected) and all(v == Verdict.GREEN for v in verdict_of.values()) and m.complete \
        and not any(m.src_changes.values())
    if m.overall_verdict != Verdict.GREEN:
        result.not_green(f"manifest.json: overall verdict is {m.overall_verdict}, not GREEN")
    elif not green:
        result.problems.append(f"manifest.json: overall verdict GREEN contradicts its targets/production-code checks")
    for entry in m.files + m.external:
        if entry.target in verdict_of and entry.verdict != verdict_of[entry.target]:
            result.problems.append(f"manifest.json: {entry.path} has verdict {entry.verdict} but its target "
                                   f"{entry.target!r} is {verdict_of[entry.target]}")
    return records


_SUMMARY = re.compile(r"^\*\*Overall verdict: (\S+)\*\*")


def _check_story(hub: Path, m: Manifest, expected: Expected, records: dict[str, VerdictRecord],
                 result: ValidationResult) -> None:
    """A record made GREEN by hand still has its RED log footer (only a rerun catches a forger who edits every file)."""
    for name, log, _ in expected:
        record, log_path = records.get(name), inside(hub, str(log))
        if not (record and inside(hub, HubFiles.verdict(name)) and log_path and log_path.is_file()):
            continue
        frame = read_frame(log_path) if not log_path.is_symlink() else None  # one pass, whatever the log's size
        sealed = record.log_sha256 and frame  # a harness-made log: sealed, framed
        if sealed and (broken := seal_problem(log_path, record.log_sha256, record.log_bytes, frame)):
            result.problems.append(broken)
        elif frame and frame.verdict and frame.verdict != record.verdict:
            result.problems.append(f"{HubFiles.verdict(name)}: says {record.verdict} but {log} ends with verdict "
                                   f"{frame.verdict} (a record edited by hand?)")
    summary = hub / HubFiles.SUMMARY
    said = [m_.group(1) for line in _head(summary, 8) if (m_ := _SUMMARY.match(line))] \
        if summary.is_file() and not summary.is_symlink() else []
    if said and said[0] != m.overall_verdict:
        result.problems.append(f"{HubFiles.SUMMARY}: says {said[0]} but manifest.json says {m.overall_verdict} "
                               "(edited by hand?)")
    junit = hub / HubFiles.JUNIT
    if junit.is_file() and not junit.is_symlink():
        failures = re.search(r'failures="(\d+)"', "".join(_head(junit, 4)))
        bad = sum(v != Verdict.GREEN for _, _, v in expected) + (m.overall_verdict != Verdict.GREEN)
        if failures and int(failures.group(1)) != bad:
            result.problems.append(f"{HubFiles.JUNIT}: counts {failures.group(1)} failure(s), the manifest {bad} "
                                   "(edited by hand?)")


def _head(path: Path, lines: int) -> list[str]:
    """The first lines of a file, read in bounded memory."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        return [line[:4096] for _, line in zip(range(lines), handle)]


def validate(hub: str | Path, *, mode: str = "default", ignore_incomplete: bool = False, home: Path = HOME,
             project: Path | None = None) -> ValidationResult:
    """Re-check a collated hub (each problem names a path); `mode`: "default" (absent external files warn),
    "require" (they are problems) or "hub-only" (not looked at); `ignore_incomplete` is for collate itself."""
    hub = Path(hub).expanduser().resolve()
    result = ValidationResult(hub=hub)
    if not hub.is_dir():
        what = "does not exist" if not hub.exists() else "is a file, not a hub folder"
        result.problems.append(f"{hub} {what} (pass the hub folder that holds manifest.json)")
        return result
    if (hub / HubFiles.INCOMPLETE).exists() and not ignore_incomplete:
        result.problems.append(f"{HubFiles.INCOMPLETE}: the run was interrupted or never collated")
    try:
        result.manifest = m = Manifest.load(hub)
    except FileNotFoundError:
        result.problems.append(f"{HubFiles.MANIFEST}: missing — the hub was not collated, or was made by hand; "
                               f"run `python -m harness collate {hub}` if its targets finished")
        return result
    except SchemaError as exc:
        result.problems.append(f"{exc}; recollate with `python -m harness collate {hub}`")
        return result
    expected = _expected_targets(m, hub, home, result)
    _check_hub_files(hub, m, expected, result)
    _check_external(hub, m, mode, result, project)
    _check_story(hub, m, expected, _check_verdicts(hub, m, expected, result), result)
    return result


def integrity_problems(hub: Path) -> list[str]:
    """What is wrong with a hub's files and records, its verdicts aside (compare's and re-collate's gate)."""
    return validate(hub, mode="hub-only", ignore_incomplete=True).integrity_problems


def handmade_report(hub: Path, fmt: str) -> int:
    """A teammate's hand-made hub: nothing to check its bytes against, so show what its logs say."""
    from harness.hubview import DERIVED, HubUnreadable, read_handmade
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
    targets = {n: {"verdict": str(r.verdict), "reason": r.reason} for n, r in view.verdicts.items()}
    emit(fmt, "validate", {"hub": str(hub), "valid": ok, "handmade": True, "exit_code": 0 if ok else 1,
                           "targets": targets, "problems": list(view.notes)}, "\n".join(lines))
    return 0 if ok else 1
