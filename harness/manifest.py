"""`manifest.json` of a hub (which bytes the run produced) and the `validate` command.

collate writes the manifest once the verdicts are known: every file of the hub and every bulky
artifact the records point to (JUnit XML, the CLI smoke's bundle and checkpoint), each with
size, sha256 and the verdict of the target it belongs to, plus the plan file's hash and the
overall verdict. `python -m harness validate <hub>` re-checks a hub at any later time: a log
edited or deleted, a verdict changed by hand, a file slipped in afterwards, or a hub that is
not all GREEN is reported by path, and the command exits non-zero. The schema is documented in
docs/harness_manifest.md.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.records import (
    BLOCKER_FILE,
    GREEN,
    INCOMPLETE_MARKER,
    INTERRUPTED,
    MANIFEST_FILE,
    MISSING,
    RUN_FILE,
    SUMMARY_FILE,
    VERDICTS_DIR,
    Collation,
    RecordError,
    VerdictRecord,
    sha256_file,
)

MANIFEST_SCHEMA = "evidence-manifest/1"
#: Files of the hub that are never listed: the manifest itself and the in-progress marker.
UNLISTED = (MANIFEST_FILE, INCOMPLETE_MARKER)


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return Path(os.path.relpath(path.resolve(), root.resolve())).as_posix()


def _entry(path: Path, root: Path, *, role: str, target: str | None, verdict: str | None, location: str) -> dict[str, Any]:
    present = path.is_file()
    return {
        "path": _rel(path, root),
        "bytes": path.stat().st_size if present else None,
        "sha256": sha256_file(path) if present else None,
        "verdict": verdict,
        "target": target,
        "role": role,
        "location": location,
        **({} if present else {"missing": True}),
    }


def _hub_role(rel_to_hub: str, logs: dict[str, str]) -> tuple[str, str | None]:
    name = Path(rel_to_hub).name
    if rel_to_hub in logs:
        return "log", logs[rel_to_hub]
    if rel_to_hub.endswith(".partial") and rel_to_hub[: -len(".partial")] in logs:
        return "partial-log", logs[rel_to_hub[: -len(".partial")]]
    if Path(rel_to_hub).parts[:1] == (VERDICTS_DIR,) and name.endswith(".json"):
        return "verdict-record", name[: -len(".json")]
    return {SUMMARY_FILE: "summary", RUN_FILE: "run-record", BLOCKER_FILE: "blocker"}.get(rel_to_hub, "other"), None


def _external_paths(c: Collation) -> list[tuple[Path, str, str]]:
    """(absolute path, role, target) of the bulky artifacts the verdict records point to."""
    found: list[tuple[Path, str, str]] = []
    for t in c.targets:
        rec = t.record
        if rec is None:
            continue
        refs: list[tuple[str, str]] = []
        if rec.junit_xml:
            refs.append((rec.junit_xml, "junit"))
        refs += [(o["path"], "output") for o in rec.outputs if isinstance(o, dict) and o.get("path")]
        train = rec.record or {}
        refs += [(train[k], k) for k in ("bundle", "checkpoint") if train.get(k)]
        for ref, role in refs:
            path = c.abs_path(ref)
            if path.is_dir():
                found += [(p, role, t.name) for p in sorted(path.rglob("*")) if p.is_file()]
            elif path.is_file() or t.verdict == GREEN:
                # A failed target's declared outputs were usually never produced: nothing to list.
                # A GREEN target's must exist; listing it as missing makes validate fail.
                found.append((path, role, t.name))
    return found


def build_manifest(c: Collation) -> dict[str, Any]:
    """The manifest of a collated hub (its own file excluded)."""
    verdict_of = {t.name: t.verdict for t in c.targets}
    logs = {t.log: t.name for t in c.targets}
    artifacts: list[dict[str, Any]] = []
    for path in sorted(p for p in c.hub.rglob("*") if p.is_file()):
        rel_hub = path.relative_to(c.hub).as_posix()
        if rel_hub in UNLISTED:
            continue
        role, target = _hub_role(rel_hub, logs)
        artifacts.append(_entry(path, c.project_root, role=role, target=target,
                                verdict=verdict_of.get(target) if target else None, location="hub"))
    seen = {a["path"] for a in artifacts}
    for path, role, target in _external_paths(c):
        entry = _entry(path, c.project_root, role=role, target=target, verdict=verdict_of[target], location="external")
        if entry["path"] not in seen:
            seen.add(entry["path"])
            artifacts.append(entry)
    return {
        "schema": MANIFEST_SCHEMA,
        "hub": c.hub_rel,
        "plan": {"path": c.plan_rel, "sha256": c.plan_sha256, "id": c.plan_id},
        "timestamp": c.timestamp,
        "collated_utc": c.collated_utc,
        "overall_verdict": c.overall,
        "overall_reason": c.overall_reason,
        "complete": not c.interrupted,
        "partial_run": c.partial_run,
        "src_changes": {k: list(v) for k, v in c.src_changes.items()},
        "git": {"sha": c.run.git.sha, "dirty": c.run.git.dirty},
        "targets": [
            {
                "name": t.name,
                "kind": t.kind,
                "verdict": t.verdict,
                "reason": t.reason,
                "log": t.log,
                "duration_s": t.duration_s,
                "counts": None if t.record is None else vars(t.record.counts),
            }
            for t in c.targets
        ],
        "artifacts": artifacts,
    }


# --------------------------------------------------------------------------- validate

@dataclass
class ValidationResult:
    """Problems make a hub invalid; warnings are printed but do not fail it."""

    hub: Path
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    manifest: dict[str, Any] | None = None
    unreadable: bool = False  # no manifest, bad JSON or another schema: nothing else was checked
    #: The subset of `problems` that only say "X is not GREEN" (the hub is sound, the run failed).
    verdict_problems: list[str] = field(default_factory=list)

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


def _project_root(hub: Path, manifest: dict[str, Any], result: ValidationResult) -> Path:
    """The root the manifest's paths are relative to: the hub path minus its recorded suffix."""
    hub_rel = Path(str(manifest.get("hub") or ""))
    parts = hub_rel.parts
    if parts and not hub_rel.is_absolute() and hub.parts[-len(parts):] == parts:
        return Path(*hub.parts[: -len(parts)]) if len(hub.parts) > len(parts) else Path("/")
    try:
        root = json.loads((hub / RUN_FILE).read_text(encoding="utf-8")).get("project_root")
    except (OSError, ValueError, AttributeError):
        root = None
    if root and Path(root).is_dir():
        result.warnings.append(f"{hub}: moved from its recorded place {hub_rel}; using run.json's project root {root}")
        return Path(root)
    result.warnings.append(f"{hub}: cannot locate the project root from manifest 'hub' = {hub_rel}; using the hub's parent")
    return hub.parent


def _expected_targets(manifest: dict[str, Any], root: Path, result: ValidationResult) -> list[dict[str, Any]]:
    """Targets whose artifacts must exist: the plan's, when the plan file is unchanged."""
    targets = [t for t in manifest.get("targets") or [] if isinstance(t, dict)]
    plan = manifest.get("plan") or {}
    plan_path = root / str(plan.get("path") or "")
    if not plan.get("path") or not plan_path.is_file():
        result.warnings.append(f"{plan.get('path')}: plan file not found; checking the targets the manifest lists")
        return targets
    if sha256_file(plan_path) != plan.get("sha256"):
        result.warnings.append(f"{plan['path']}: plan file changed since this run; checking the targets the manifest lists")
        return targets
    from harness.plan import load_plan  # deferred: validate of an unreadable hub needs no plan

    try:
        planned = load_plan(plan_path)
    except (ValueError, OSError) as exc:
        result.warnings.append(f"{plan['path']}: plan does not load ({exc}); checking the targets the manifest lists")
        return targets
    listed = {t.get("name"): t for t in targets}
    for pt in planned.targets:
        if pt.name not in listed:
            result.problems.append(f"manifest.json: plan target {pt.name!r} is not listed (manifest edited by hand?)")
    return [listed.get(pt.name, {"name": pt.name, "log": pt.log, "verdict": None}) for pt in planned.targets]


def _check_artifacts(hub: Path, root: Path, manifest: dict[str, Any], hub_only: bool, result: ValidationResult) -> set[str]:
    listed: set[str] = set()
    for entry in manifest.get("artifacts") or []:
        if not isinstance(entry, dict) or not entry.get("path"):
            result.problems.append(f"manifest.json: artifact entry without a path: {entry!r}")
            continue
        rel = str(entry["path"])
        listed.add(rel)
        path = root / rel
        if entry.get("missing"):
            result.problems.append(f"{rel}: was already missing when the hub was collated")
            continue
        if not path.is_file():
            external = entry.get("location") == "external"
            if external and hub_only:
                result.warnings.append(f"{rel}: not present here (bulky artifact outside the hub; --hub-only)")
            else:
                result.problems.append(f"{rel}: missing (listed in manifest.json with {entry.get('bytes')} bytes)")
            continue
        size = path.stat().st_size
        if size != entry.get("bytes"):
            result.problems.append(f"{rel}: size changed ({entry.get('bytes')} bytes in manifest.json, {size} now)")
        elif sha256_file(path) != entry.get("sha256"):
            result.problems.append(f"{rel}: content changed (sha256 differs from manifest.json)")
    return listed


def _check_verdicts(hub: Path, root: Path, manifest: dict[str, Any], expected: list[dict[str, Any]], result: ValidationResult) -> None:
    verdict_of: dict[str, str | None] = {}
    for t in expected:
        name = str(t.get("name"))
        verdict = t.get("verdict")
        verdict_of[name] = verdict
        record_path = hub / VERDICTS_DIR / f"{name}.json"
        if verdict != GREEN:
            result.not_green(f"manifest.json: target {name!r} is {verdict}, not GREEN")
        if record_path.is_file() and record_path.stat().st_size:
            try:
                record = VerdictRecord.load(record_path)
            except RecordError as exc:
                result.problems.append(str(exc))
            else:
                if record.verdict != verdict:
                    result.problems.append(
                        f"manifest.json: target {name!r} is {verdict} but {_rel(record_path, root)} says "
                        f"{record.verdict} (manifest edited by hand?)"
                    )
    overall = manifest.get("overall_verdict")
    recomputed = GREEN if (
        expected and all(v == GREEN for v in verdict_of.values())
        and not any(manifest.get("src_changes", {}).values())
        and manifest.get("complete", False) and not manifest.get("partial_run", False)
    ) else "not GREEN"
    if overall != GREEN:
        result.not_green(f"manifest.json: overall verdict is {overall}, not GREEN")
    if (overall == GREEN) != (recomputed == GREEN):
        result.problems.append(f"manifest.json: overall verdict {overall} contradicts its targets/src checks ({recomputed})")
    for entry in manifest.get("artifacts") or []:
        if isinstance(entry, dict) and entry.get("target") in verdict_of and entry.get("verdict") != verdict_of[entry["target"]]:
            result.problems.append(
                f"manifest.json: artifact {entry.get('path')} has verdict {entry.get('verdict')} but its target "
                f"{entry['target']!r} is {verdict_of[entry['target']]}"
            )


def validate(hub: str | Path, *, hub_only: bool = False, ignore_incomplete: bool = False) -> ValidationResult:
    """Re-check a collated hub; every problem names a path and what is wrong with it.

    `hub_only` tolerates absent bulky artifacts outside the hub (a teammate's clone lacks the
    git-ignored artifacts/); `ignore_incomplete` is for collate itself, which validates before
    it removes the INCOMPLETE marker.
    """
    hub = Path(hub).resolve()
    result = ValidationResult(hub=hub)
    if not hub.is_dir():
        result.problems.append(f"{hub}: not a directory (pass the hub folder that holds manifest.json)")
        result.unreadable = True
        return result
    manifest_path = hub / MANIFEST_FILE
    if (hub / INCOMPLETE_MARKER).exists() and not ignore_incomplete:
        result.problems.append(f"{hub / INCOMPLETE_MARKER}: the run was interrupted or never collated")
    if not manifest_path.is_file():
        result.problems.append(
            f"{manifest_path}: missing — the hub was not collated, or was made by hand or by an older "
            f"harness; run `python -m harness collate {hub}` if its targets finished"
        )
        result.unreadable = True
        return result
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        result.problems.append(f"{manifest_path}: not readable JSON ({exc}); recollate the hub")
        result.unreadable = True
        return result
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        schema = manifest.get("schema") if isinstance(manifest, dict) else type(manifest).__name__
        result.problems.append(
            f"{manifest_path}: schema {schema!r}, expected {MANIFEST_SCHEMA!r} (an older or foreign format); "
            f"recollate with `python -m harness collate {hub}`"
        )
        result.unreadable = True
        return result
    result.manifest = manifest
    root = _project_root(hub, manifest, result)
    listed = _check_artifacts(hub, root, manifest, hub_only, result)
    expected = _expected_targets(manifest, root, result)
    required: list[Path] = [hub / SUMMARY_FILE, hub / RUN_FILE]
    recorded_absent: set[Path] = set()  # files of targets the manifest itself says never finished
    for t in expected:
        files = [hub / VERDICTS_DIR / f"{t.get('name')}.json"] + ([hub / str(t["log"])] if t.get("log") else [])
        required += files
        if t.get("verdict") in (MISSING, INTERRUPTED):
            recorded_absent.update(files)
    for path in required:
        rel = _rel(path, root)
        if not path.is_file():
            if rel in listed:
                continue  # already reported as missing
            message = f"{rel}: expected artifact missing"
            if path in recorded_absent:  # honest about it: the run failed, the hub is not damaged
                result.not_green(message + " (its target is recorded as not finished)")
            else:
                result.problems.append(message)
        elif path.stat().st_size == 0:
            result.problems.append(f"{rel}: expected artifact is empty")
        elif rel not in listed:
            result.problems.append(f"{rel}: expected artifact not listed in manifest.json")
    for path in sorted(p for p in hub.rglob("*") if p.is_file()):
        rel = _rel(path, root)
        if path.relative_to(hub).as_posix() not in UNLISTED and rel not in listed and path not in required:
            result.problems.append(f"{rel}: in the hub but not listed in manifest.json (added after collate?)")
    _check_verdicts(hub, root, manifest, expected, result)
    return result


# --------------------------------------------------------------------------- CLI

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`python -m harness validate <hub> [--hub-only]`."""
    parser.description = "Re-check a collated hub: every artifact present with its recorded size and sha256, all GREEN."
    parser.add_argument("hub", type=Path, help="hub folder (holds manifest.json)")
    parser.add_argument("--hub-only", action="store_true",
                        help="tolerate missing bulky artifacts outside the hub (artifacts/ is git-ignored, "
                             "so a teammate's clone does not have them); still verify them when present")


def main(args: argparse.Namespace) -> int:
    """Exit 0 when valid, 1 when problems were found, 2 when the hub has no readable manifest."""
    result = validate(args.hub, hub_only=args.hub_only)
    for warning in result.warnings:
        print(f"warning: {warning}")
    for problem in result.problems:
        print(f"problem: {problem}")
    if result.ok:
        n = len(result.manifest.get("artifacts") or []) if result.manifest else 0
        print(f"{result.hub}: valid ({n} artifacts, overall GREEN)")
        return 0
    print(f"{result.hub}: INVALID ({len(result.problems)} problem(s))")
    return 2 if result.unreadable else 1
