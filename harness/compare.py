"""Compare two hubs: do they tell the same story, and if not, where and why?

`python -m harness compare <hubA> <hubB>` reads each hub's verdict records and compares what
the evidence means (verdicts, test node ids, counts, the CLI smoke's loss, shapes and epochs,
the data hash), never log bytes. Exit 0: they agree (within tolerance); 1: they disagree,
disagreements listed first; 2: a hub is unreadable or fails validate. Environment drift
(git SHA, versions, platform) alone is a printed warning, not a disagreement.

Loss tolerance policy: the final training loss must agree within `loss_rtol` (relative) only
when both runs are deterministic (`--deterministic`) with the same Python/torch/lightning/numpy
versions, seed and thread count; otherwise a loss outside tolerance is a warning, since the
two runs were not expected to match bit for bit. Defaults come from `Tolerance`; a plan's
`[compare]` table overrides them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterable

from harness.hubread import Hub, HubUnreadable, read_hub
from harness.plan import load_plan
from harness.records import VerdictRecord

DISAGREE, AGREE, WARN = "DISAGREE", "agree", "warning"
ENVIRONMENT = "(environment)"
PLAN = "(plan)"
HUB = "(hub)"
COUNT_KEYS = ("passed", "failed", "skipped", "errors", "xfailed")
# Provenance that changes floating-point results: loss is compared strictly only when equal.
STRICT_KEYS = ("python", "torch", "lightning", "numpy", "seed", "threads")
ENV_KEYS = ("git_sha", "git_dirty", "python", "torch", "lightning", "numpy", "platform",
            "cuda_visible_devices", "seed", "threads")
HASH_CHECKS = ("data sha256", "git_sha", "plan sha256")
SMOKE_CONFIG_KEYS = ("gridsize", "n_groups", "batch_size", "n_patterns")


@dataclass(frozen=True)
class Tolerance:
    """How close two runs must be to agree (the plan's `[compare]` table)."""

    loss_rtol: float = 1e-4  # relative difference of final_train_loss, deterministic runs only
    duration_ratio_warn: float = 3.0  # warn when a target is this many times slower or faster
    duration_floor_s: float = 5.0  # ...and the slower run took at least this long (tiny times are noise)

    def __post_init__(self) -> None:
        if not (self.loss_rtol >= 0 and math.isfinite(self.loss_rtol)):
            raise ValueError(f"[compare] loss_rtol must be a finite number >= 0, got {self.loss_rtol!r}")
        if not (self.duration_ratio_warn > 1 and math.isfinite(self.duration_ratio_warn)):
            raise ValueError(
                f"[compare] duration_ratio_warn must be a finite number > 1, got {self.duration_ratio_warn!r}"
            )
        if not (self.duration_floor_s >= 0 and math.isfinite(self.duration_floor_s)):
            raise ValueError(f"[compare] duration_floor_s must be a finite number >= 0, got {self.duration_floor_s!r}")


@dataclass(frozen=True)
class Finding:
    """One compared fact: its status, where it belongs, the two values and why it matters."""

    status: str
    target: str
    check: str
    a: Any
    b: Any
    detail: str = ""


@dataclass(frozen=True)
class Comparison:
    """The result of comparing hub A with hub B."""

    hub_a: Path
    hub_b: Path
    tolerance: Tolerance
    tolerance_source: str
    findings: list[Finding]

    def by_status(self, status: str) -> list[Finding]:
        return [f for f in self.findings if f.status == status]

    @property
    def agree(self) -> bool:
        return not self.by_status(DISAGREE)

    @property
    def exit_code(self) -> int:
        return 0 if self.agree else 1

    def not_green_in_both(self) -> list[str]:
        """Targets both hubs agree are not GREEN: agreement, but not evidence of success."""
        return [f.target for f in self.findings
                if f.check == "verdict" and f.status == AGREE and f.a != "GREEN"]


# --------------------------------------------------------------------------- tolerance

def tolerance_from_plan(plan_path: Path) -> Tolerance:
    """Tolerance from a plan's `[compare]` table (defaults for absent keys); ValueError if bad."""
    spec = load_plan(plan_path).compare
    defaults = Tolerance()
    return Tolerance(**{f.name: float(getattr(spec, f.name, getattr(defaults, f.name))) for f in fields(Tolerance)})


def resolve_tolerance(plan: Path | None, hub_a: Hub, project_root: Path) -> tuple[Tolerance, str]:
    """Tolerance from --plan, else from the plan hub A recorded (if present here), else defaults."""
    if plan is not None:
        return tolerance_from_plan(plan), f"{plan} [compare]"
    recorded, sha = hub_a.plan_ref()
    if not recorded:
        return Tolerance(), "defaults (hub A records no plan)"
    candidate = Path(recorded) if Path(recorded).is_absolute() else project_root / recorded
    if not candidate.is_file():
        return Tolerance(), f"defaults ({recorded} not found under {project_root})"
    try:
        plan_file = load_plan(candidate)
        tolerance = tolerance_from_plan(candidate)
    except ValueError as exc:  # the recorded plan is only a convenience: say why, use defaults
        return Tolerance(), f"defaults ({recorded} does not load: {str(exc).splitlines()[0]})"
    changed = "" if plan_file.sha256 == sha else ", file changed since hub A was made"
    return tolerance, f"{recorded} [compare]{changed}"


# --------------------------------------------------------------------------- helpers

def _counts(record: VerdictRecord) -> dict[str, int]:
    return {k: int(getattr(record.counts, k)) for k in COUNT_KEYS}


def _counts_text(counts: dict[str, int]) -> str:
    shown = [f"{counts[k]} {k}" for k in COUNT_KEYS if counts[k] or k in ("passed", "failed", "skipped")]
    return ", ".join(shown)


def _outcomes(record: VerdictRecord) -> dict[str, str]:
    return {str(t["nodeid"]): str(t.get("outcome")) for t in record.tests if isinstance(t, dict) and t.get("nodeid")}


def _deterministic(record: VerdictRecord) -> bool:
    smoke = record.record or {}
    if isinstance(smoke.get("deterministic"), bool):
        return smoke["deterministic"]
    return "--deterministic" in record.argv


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _cell(check: str, value: Any, other: Any) -> str:
    """A table cell: hashes shortened, shapes as AxBxC (only the differing ones when they differ)."""
    if check in HASH_CHECKS and isinstance(value, str):
        return value[:12]
    if check in HASH_CHECKS and isinstance(value, list):  # changed during the run
        return " + ".join(str(v)[:12] for v in value)
    if value == "":
        return '""'
    if check == "shapes" and isinstance(value, dict):
        other = other if isinstance(other, dict) else {}
        keys = [k for k in value if value.get(k) != other.get(k)] or list(value)
        return ", ".join(f"{k} {'x'.join(map(str, value[k])) if isinstance(value[k], list) else value[k]}"
                         for k in keys)
    return _fmt(value)


def _clip(text: str, limit: int = 140) -> str:
    """Keep table rows readable; --format json has the full text."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short_list(items: Iterable[str], limit: int = 3) -> str:
    items = sorted(items)
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


# --------------------------------------------------------------------------- per target

def _compare_tests(name: str, a: VerdictRecord, b: VerdictRecord) -> list[Finding]:
    out_a, out_b = _outcomes(a), _outcomes(b)
    findings = []
    if out_a or out_b:
        added, removed = set(out_b) - set(out_a), set(out_a) - set(out_b)
        detail = "; ".join(
            part for part in (
                f"added in B: {_short_list(added)}" if added else "",
                f"missing from B: {_short_list(removed)}" if removed else "",
            ) if part
        )
        findings.append(Finding(DISAGREE if detail else AGREE, name, "test node ids",
                                len(out_a), len(out_b), detail or "same node ids"))
    ca, cb = _counts(a), _counts(b)
    changed = [f"{n}: {out_a[n]} -> {out_b[n]}" for n in sorted(set(out_a) & set(out_b)) if out_a[n] != out_b[n]]
    if ca != cb or changed:
        findings.append(Finding(DISAGREE, name, "counts", _counts_text(ca), _counts_text(cb),
                                "; ".join(changed[:3]) or "counts differ"))
    elif a.kind == "pytest" or out_a or out_b or any(ca.values()):
        findings.append(Finding(AGREE, name, "counts", _counts_text(ca), _counts_text(cb)))
    return findings


def _strict_loss(a: VerdictRecord, b: VerdictRecord) -> tuple[bool, str]:
    """Whether the loss must match within tolerance, and if not, why not."""
    reasons = []
    if not (_deterministic(a) and _deterministic(b)):
        reasons.append("not both --deterministic")
    drift = [k for k in STRICT_KEYS if getattr(a.provenance, k) != getattr(b.provenance, k)]
    if drift:
        reasons.append(f"{', '.join(drift)} {'differs' if len(drift) == 1 else 'differ'}")
    return not reasons, "; ".join(reasons)


def _compare_loss(name: str, a: VerdictRecord, b: VerdictRecord, tol: Tolerance) -> Finding:
    la = (a.record or {}).get("final_train_loss")
    lb = (b.record or {}).get("final_train_loss")
    if not isinstance(la, (int, float)) or not isinstance(lb, (int, float)):
        return Finding(DISAGREE, name, "final_train_loss", la, lb, "a record lacks a numeric final_train_loss")
    if not (math.isfinite(la) and math.isfinite(lb)):
        same = math.isnan(la) and math.isnan(lb) or la == lb
        return Finding(AGREE if same else DISAGREE, name, "final_train_loss", la, lb, "non-finite loss")
    rel = abs(lb - la) / max(abs(la), abs(lb), 1e-300)
    detail = f"rel diff {rel:.2e} (rtol {tol.loss_rtol:g})"
    if rel <= tol.loss_rtol:
        return Finding(AGREE, name, "final_train_loss", la, lb, detail)
    strict, why_not = _strict_loss(a, b)
    if strict:
        return Finding(DISAGREE, name, "final_train_loss", la, lb, detail + ", deterministic on same versions")
    return Finding(WARN, name, "final_train_loss", la, lb, detail + f"; not enforced: {why_not}")


def _compare_record(name: str, a: VerdictRecord, b: VerdictRecord, tol: Tolerance) -> list[Finding]:
    ra, rb = a.record, b.record
    if ra is None and rb is None:
        return []
    if not isinstance(ra, dict) or not isinstance(rb, dict):
        where = "A" if not isinstance(ra, dict) else "B"
        return [Finding(DISAGREE, name, "TRAIN_RECORD", "present" if where == "B" else "missing",
                        "present" if where == "A" else "missing", f"no TRAIN_RECORD in hub {where}")]
    findings = [_compare_loss(name, a, b, tol)]
    sa, sb = ra.get("shapes"), rb.get("shapes")
    if sa == sb and sa is not None:
        findings.append(Finding(AGREE, name, "shapes", sa, sb))
    else:
        keys = sorted(set(sa or {}) | set(sb or {}))
        differ = [k for k in keys if (sa or {}).get(k) != (sb or {}).get(k)]
        findings.append(Finding(DISAGREE, name, "shapes", sa, sb, f"differ: {', '.join(differ) or 'missing'}"))
    ea, eb = ra.get("epochs"), rb.get("epochs")
    findings.append(Finding(AGREE if ea == eb and ea is not None else DISAGREE, name, "epochs", ea, eb))
    ca = {k: ra.get(k) for k in SMOKE_CONFIG_KEYS}
    cb = {k: rb.get(k) for k in SMOKE_CONFIG_KEYS}
    differ = [k for k in SMOKE_CONFIG_KEYS if ca[k] != cb[k]]
    findings.append(Finding(DISAGREE if differ else AGREE, name, "smoke config",
                            " ".join(f"{k}={_fmt(v)}" for k, v in ca.items()),
                            " ".join(f"{k}={_fmt(v)}" for k, v in cb.items()),
                            f"differ: {', '.join(differ)}" if differ else ""))
    findings.append(_compare_data(name, ra, rb))
    return findings


def _compare_data(name: str, ra: dict[str, Any], rb: dict[str, Any]) -> Finding:
    """Same training data: the recorded sha256 decides; without one, only the file name can."""
    da, db = ra.get("train_data_sha256"), rb.get("train_data_sha256")
    if da and db:
        return Finding(AGREE if da == db else DISAGREE, name, "data sha256", da, db,
                       "" if da == db else "the training data differ")
    fa, fb = ra.get("train_data_file"), rb.get("train_data_file")
    missing = " and ".join(h for h, d in (("A", da), ("B", db)) if not d)
    if fa != fb:
        return Finding(DISAGREE, name, "data file", fa, fb, f"different training files (no sha256 in {missing})")
    return Finding(WARN, name, "data sha256", da, db,
                   f"TRAIN_RECORD of {missing} has no train_data_sha256: same file name {fa}, content unconfirmed")


def compare_target(name: str, a: VerdictRecord | None, b: VerdictRecord | None, tol: Tolerance) -> list[Finding]:
    """Every finding for one target present in at least one hub."""
    if a is None or b is None:
        where = "A" if a is None else "B"
        return [Finding(DISAGREE, name, "target", a.verdict if a else None, b.verdict if b else None,
                        f"target not run in hub {where}")]
    same = a.verdict == b.verdict
    if not same:
        detail = f"A: {a.reason} / B: {b.reason}"
    elif a.verdict != "GREEN":  # agreeing on RED is agreement, but say why neither is GREEN
        detail = f"not GREEN in either: {a.reason}" + ("" if a.reason == b.reason else f" / B: {b.reason}")
    else:
        detail = ""
    findings = [Finding(AGREE if same else DISAGREE, name, "verdict", a.verdict, b.verdict, detail)]
    findings += _compare_tests(name, a, b)
    findings += _compare_record(name, a, b, tol)
    da, db = a.duration_s, b.duration_s
    if da is not None and db is not None and da > 0:
        ratio = db / da
        outside = ratio > tol.duration_ratio_warn or ratio < 1 / tol.duration_ratio_warn
        slow = outside and max(da, db) >= tol.duration_floor_s
        findings.append(Finding(WARN if slow else AGREE, name, "duration_s", round(da, 2), round(db, 2),
                                f"B/A = {ratio:.2f}" + (f" (outside x{tol.duration_ratio_warn:g})" if slow else "")))
    return findings


# --------------------------------------------------------------------------- environment

def _env_values(hub: Hub, key: str) -> Any:
    values = []
    for record in hub.verdicts.values():
        value = getattr(record.provenance, key)
        if value not in values:
            values.append(value)
    return values[0] if len(values) == 1 else values


def _dirty_finding(a: Hub, b: Hub, va: Any, vb: Any) -> Finding:
    """A dirty (or unknown) tree in either hub is a warning naming the files."""
    parts = []
    for label, hub, value in (("A", a, va), ("B", b, vb)):
        if value is False:
            continue
        files = sorted({f for r in hub.verdicts.values() for f in r.provenance.dirty_files})
        parts.append(f"{label}: " + (_short_list(files) if files else "git state unknown" if value is None else "dirty"))
    detail = f"tracked files differed from HEAD ({'; '.join(parts)})" if parts else ""
    return Finding(WARN if parts else AGREE, ENVIRONMENT, "git_dirty", va, vb, detail)


def compare_environment(a: Hub, b: Hub) -> list[Finding]:
    """Environment and plan drift: warnings, never disagreements."""
    findings = []
    for key in ENV_KEYS:
        va, vb = _env_values(a, key), _env_values(b, key)
        if key == "git_dirty":
            findings.append(_dirty_finding(a, b, va, vb))
            continue
        mixed = [h for h, v in (("A", va), ("B", vb)) if isinstance(v, list)]
        if va == vb and not mixed:
            findings.append(Finding(AGREE, ENVIRONMENT, key, va, vb))
        else:
            detail = f"changed during the run in {' and '.join(mixed)}" if mixed else "environment drift"
            findings.append(Finding(WARN, ENVIRONMENT, key, va, vb, detail))
    (pa, ha), (pb, hb) = a.plan_ref(), b.plan_ref()
    if pa or pb:
        same = (pa, ha) == (pb, hb)
        detail = pa if pa == pb else f"A: {pa}, B: {pb}"
        findings.append(Finding(AGREE if same else WARN, PLAN, "plan sha256", ha, hb,
                                detail if same else f"different plan files ({detail})"))
    return findings


def _compare_overall(a: Hub, b: Hub) -> Finding:
    """collate's hub verdict (every target GREEN, src/ untouched, run complete) must match too."""
    va, vb = a.manifest.get("overall_verdict"), b.manifest.get("overall_verdict")
    ra, rb = a.manifest.get("overall_reason") or "", b.manifest.get("overall_reason") or ""
    if va != vb:
        return Finding(DISAGREE, HUB, "overall verdict", va, vb, f"A: {ra} / B: {rb}")
    detail = "" if va == "GREEN" else f"not GREEN in either: {ra}" + ("" if ra == rb else f" / B: {rb}")
    return Finding(AGREE, HUB, "overall verdict", va, vb, detail)


def compare_hubs(a: Hub, b: Hub, tol: Tolerance, tolerance_source: str = "defaults") -> Comparison:
    """Compare two read hubs; disagreements never depend on log bytes or timestamps."""
    names = a.targets + [n for n in b.targets if n not in a.verdicts]
    findings = [_compare_overall(a, b)]
    for name in names:
        findings += compare_target(name, a.verdicts.get(name), b.verdicts.get(name), tol)
    findings += compare_environment(a, b)
    return Comparison(a.path, b.path, tol, tolerance_source, findings)


# --------------------------------------------------------------------------- output

def render_table(result: Comparison) -> str:
    """Disagreements first, then agreements, then warnings, as GitHub-flavoured tables."""
    from tabulate import tabulate  # noqa: PLC0415 (import cost only when rendering)

    lines = [f"A: {result.hub_a}", f"B: {result.hub_b}",
             f"tolerance: loss_rtol={result.tolerance.loss_rtol:g}, "
             f"duration_ratio_warn={result.tolerance.duration_ratio_warn:g}, "
             f"duration_floor_s={result.tolerance.duration_floor_s:g} ({result.tolerance_source})"]
    for title, status in (("DISAGREEMENTS", DISAGREE), ("AGREEMENTS", AGREE), ("WARNINGS", WARN)):
        rows = [[f.target, f.check, _cell(f.check, f.a, f.b),
                 "= A" if f.a == f.b and f.a is not None else _cell(f.check, f.b, f.a), _clip(f.detail)]
                for f in result.by_status(status)]
        lines += ["", f"{title} ({len(rows)})"]
        if rows:
            lines.append(tabulate(rows, headers=["target", "check", "A", "B", "detail"], tablefmt="github"))
    n_dis, n_warn = len(result.by_status(DISAGREE)), len(result.by_status(WARN))
    outcome = "AGREE" if result.agree else "DISAGREE"
    not_green = result.not_green_in_both()
    overall = next((f for f in result.findings if f.check == "overall verdict"), None)
    if not_green or (overall and overall.status == AGREE and overall.a != "GREEN"):
        targets = f"targets {', '.join(not_green)}" if not_green else f"the hub verdict ({overall.a})"
        lines += ["", f"note: not GREEN in either hub: {targets}; the hubs agree, but neither is GREEN evidence"]
    lines += ["", f"result: {outcome} ({n_dis} disagreement(s), {n_warn} warning(s)); exit {result.exit_code}"]
    return "\n".join(lines)


def render_json(result: Comparison) -> str:
    """Machine-readable comparison (schema evidence-compare/1)."""
    payload = {
        "schema": "evidence-compare/1",
        "hub_a": str(result.hub_a),
        "hub_b": str(result.hub_b),
        "tolerance": asdict(result.tolerance),
        "tolerance_source": result.tolerance_source,
        "result": "AGREE" if result.agree else "DISAGREE",
        "exit_code": result.exit_code,
        "not_green_in_both": result.not_green_in_both(),
        "disagreements": [asdict(f) for f in result.by_status(DISAGREE)],
        "agreements": [asdict(f) for f in result.by_status(AGREE)],
        "warnings": [asdict(f) for f in result.by_status(WARN)],
    }
    return json.dumps(payload, indent=2, default=str)


def report_unreadable(errors: list[HubUnreadable], fmt: str) -> int:
    """Print why hubs cannot be compared and return exit status 2."""
    if fmt == "json":
        print(json.dumps({"schema": "evidence-compare/1", "result": "UNREADABLE", "exit_code": 2,
                          "errors": [{"hub": str(e.hub), "problems": e.problems} for e in errors]}, indent=2))
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 2


def run_compare(hub_a: Path, hub_b: Path, *, plan: Path | None = None, fmt: str = "table",
                project_root: Path | None = None) -> int:
    """Read, compare and print; return 0 agree, 1 disagree, 2 unreadable (the CLI's status)."""
    hubs, errors = [], []
    for path in (hub_a, hub_b):
        try:
            hubs.append(read_hub(path))
        except HubUnreadable as exc:
            errors.append(exc)
    if errors:
        return report_unreadable(errors, fmt)
    try:
        tol, source = resolve_tolerance(plan, hubs[0], project_root or Path.cwd())
    except (OSError, ValueError) as exc:
        print(f"error: cannot read tolerances: {exc}", file=sys.stderr)
        return 2
    result = compare_hubs(hubs[0], hubs[1], tol, source)
    print(render_json(result) if fmt == "json" else render_table(result))
    return result.exit_code


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CLI: compare HUB_A HUB_B [--plan P] [--format table|json]."""
    parser.add_argument("hub_a", type=Path, help="reference hub (e.g. the teammate's)")
    parser.add_argument("hub_b", type=Path, help="hub to check against it (e.g. your rerun)")
    parser.add_argument("--plan", type=Path, default=None,
                        help="plan TOML whose [compare] table sets tolerances "
                             "(default: the plan hub A records, else built-in defaults)")
    parser.add_argument("--format", choices=("table", "json"), default="table", dest="fmt")
    parser.add_argument("--project-root", type=Path, default=None,
                        help="where recorded plan paths are resolved (default: current directory)")


def main(args: argparse.Namespace) -> int:
    """Exit 0 when the hubs agree, 1 when they disagree, 2 when a hub is unreadable."""
    return run_compare(args.hub_a, args.hub_b, plan=args.plan, fmt=args.fmt, project_root=args.project_root)
