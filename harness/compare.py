"""Compare two hubs: do they tell the same story, and if not, where and why? What the evidence means is compared
(verdicts, node ids, counts, smoke record, pixels), never log bytes; drift only warns (docs/reproduce.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.context import HOME, resolve_plan
from harness.hubview import HubView
from harness.plan import CompareSpec, load_plan
from harness.reporting import short_list
from harness.schema import Verdict, VerdictRecord

DISAGREE, AGREE, WARN = "DISAGREE", "agree", "warning"
ENVIRONMENT, PLAN, HUB = "(environment)", "(plan)", "(hub)"
COUNT_KEYS = ("passed", "failed", "skipped", "errors", "xfailed", "xpassed")
STRICT_KEYS = ("python", "torch", "lightning", "numpy", "seed", "threads")  # change floating-point results
ENV_KEYS = ("git_sha", "git_dirty", "python", "torch", "lightning", "numpy", "platform", "cuda_visible_devices",
            "seed", "threads")
HASH_CHECKS = ("data sha256", "git_sha", "plan sha256")
SMOKE_CONFIG_KEYS = ("gridsize", "n_groups", "batch_size", "n_patterns")


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
    tolerance: CompareSpec
    tolerance_source: str
    findings: list[Finding]
    signers: tuple[str, str] = ("unsigned", "unsigned")  # who signed each hub (harness/attest.py)

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
        return [f.target for f in self.findings if f.check == "verdict" and f.status == AGREE and f.a != Verdict.GREEN]


def resolve_tolerance(plan: Path | None, hub_a: HubView, home: Path = HOME) -> tuple[CompareSpec, str]:
    """Tolerance from --plan, else from the plan hub A recorded (if found here), else defaults."""
    if plan is not None:
        return load_plan(plan).compare, f"{plan} [compare]"
    if not hub_a.plan.path:
        return CompareSpec(), "defaults (hub A records no plan)"
    if not (candidate := resolve_plan(hub_a.plan.path, home)).is_file():
        return CompareSpec(), f"defaults ({hub_a.plan.path} not found here)"
    try:
        loaded = load_plan(candidate)
    except ValueError as exc:  # the recorded plan is only a convenience: say why, use defaults
        return CompareSpec(), f"defaults ({hub_a.plan.path} does not load: {str(exc).splitlines()[0]})"
    changed = "" if loaded.sha256 == hub_a.plan.sha256 else ", file changed since hub A was made"
    return loaded.compare, f"{hub_a.plan.path} [compare]{changed}"


def _counts_text(record: VerdictRecord) -> str:
    """`3 passed, 0 failed, 0 skipped` plus any other non-zero count: equal texts, equal counts."""
    counts = {k: getattr(record.counts, k) if record.counts else 0 for k in COUNT_KEYS}
    return ", ".join(f"{counts[k]} {k}" for k in COUNT_KEYS if counts[k] or k in ("passed", "failed", "skipped"))


def _compare_tests(name: str, a: VerdictRecord, b: VerdictRecord) -> list[Finding]:
    out_a, out_b = ({str(t["nodeid"]): str(t.get("outcome")) for t in r.tests if t.get("nodeid")} for r in (a, b))
    findings = []
    if out_a or out_b:
        added, removed = set(out_b) - set(out_a), set(out_a) - set(out_b)
        detail = "; ".join(p for p in (f"added in B: {short_list(sorted(added))}" if added else "",
                                       f"missing from B: {short_list(sorted(removed))}" if removed else "") if p)
        findings.append(Finding(DISAGREE if detail else AGREE, name, "test node ids", len(out_a), len(out_b),
                                detail or "same node ids"))
    ca, cb = _counts_text(a), _counts_text(b)
    changed = [f"{n}: {out_a[n]} -> {out_b[n]}" for n in sorted(set(out_a) & set(out_b)) if out_a[n] != out_b[n]]
    if ca != cb or changed:
        findings.append(Finding(DISAGREE, name, "counts", ca, cb, "; ".join(changed[:3]) or "counts differ"))
    elif a.kind == "pytest":
        findings.append(Finding(AGREE, name, "counts", ca, cb))
    return findings


def _deterministic(record: VerdictRecord) -> bool:
    smoke = record.record or {}
    return smoke["deterministic"] if isinstance(smoke.get("deterministic"), bool) else "--deterministic" in record.argv


def not_comparable(a: VerdictRecord, b: VerdictRecord) -> list[str]:
    """Why two runs are not expected to match bit for bit (empty: deterministic on the same versions)."""
    why = [] if _deterministic(a) and _deterministic(b) else ["not both --deterministic"]
    drift = [k for k in STRICT_KEYS if a.provenance.value(k) != b.provenance.value(k)]
    return why + ([f"{', '.join(drift)} {'differs' if len(drift) == 1 else 'differ'}"] if drift else [])


def _compare_loss(name: str, a: VerdictRecord, b: VerdictRecord, tol: CompareSpec) -> Finding:
    la, lb = (a.record or {}).get("final_train_loss"), (b.record or {}).get("final_train_loss")
    if not isinstance(la, (int, float)) or not isinstance(lb, (int, float)):
        return Finding(DISAGREE, name, "final_train_loss", la, lb, "a record lacks a numeric final_train_loss")
    if not (math.isfinite(la) and math.isfinite(lb)):
        same = (math.isnan(la) and math.isnan(lb)) or la == lb
        return Finding(AGREE if same else DISAGREE, name, "final_train_loss", la, lb, "non-finite loss")
    rel = abs(lb - la) / max(abs(la), abs(lb), 1e-300)
    detail = f"rel diff {rel:.2e} (rtol {tol.loss_rtol:g})"
    if rel <= tol.loss_rtol:
        return Finding(AGREE, name, "final_train_loss", la, lb, detail)
    if not (why_not := not_comparable(a, b)):
        return Finding(DISAGREE, name, "final_train_loss", la, lb, detail + ", deterministic on same versions")
    return Finding(WARN, name, "final_train_loss", la, lb, detail + f"; not enforced: {'; '.join(why_not)}")


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
                   f"{missing} has no train_data_sha256: same file name {fa}, content unconfirmed")


def _compare_record(name: str, a: VerdictRecord, b: VerdictRecord, tol: CompareSpec) -> list[Finding]:
    ra, rb = a.record, b.record
    if ra is None and rb is None:
        return []
    if not isinstance(ra, dict) or not isinstance(rb, dict):
        where = "A" if not isinstance(ra, dict) else "B"
        return [Finding(DISAGREE, name, "TRAIN_RECORD", "missing" if where == "A" else "present",
                        "missing" if where == "B" else "present", f"no TRAIN_RECORD in hub {where}")]
    findings = [_compare_loss(name, a, b, tol)]
    sa, sb = ra.get("shapes"), rb.get("shapes")
    differ = [k for k in sorted(set(sa or {}) | set(sb or {})) if (sa or {}).get(k) != (sb or {}).get(k)]
    findings.append(Finding(AGREE, name, "shapes", sa, sb) if sa == sb and sa is not None else
                    Finding(DISAGREE, name, "shapes", sa, sb, f"differ: {', '.join(differ) or 'missing'}"))
    ea, eb = ra.get("epochs"), rb.get("epochs")
    findings.append(Finding(AGREE if ea == eb and ea is not None else DISAGREE, name, "epochs", ea, eb))
    config = [k for k in SMOKE_CONFIG_KEYS if ra.get(k) != rb.get(k)]
    ca, cb = (" ".join(f"{k}={r.get(k)}" for k in SMOKE_CONFIG_KEYS) for r in (ra, rb))
    findings.append(Finding(DISAGREE if config else AGREE, name, "smoke config", ca, cb,
                            f"differ: {', '.join(config)}" if config else ""))
    return findings + [_compare_data(name, ra, rb)]


def compare_target(name: str, a: VerdictRecord | None, b: VerdictRecord | None, tol: CompareSpec) -> list[Finding]:
    """Every finding for one target present in at least one hub."""
    if a is None or b is None:
        return [Finding(DISAGREE, name, "target", a.verdict if a else None, b.verdict if b else None,
                        f"target not run in hub {'A' if a is None else 'B'}")]
    detail = ""
    if a.verdict != b.verdict:
        detail = f"A: {a.reason} / B: {b.reason}"
    elif a.verdict != Verdict.GREEN:  # agreeing on RED is agreement, but say why neither is GREEN
        detail = f"not GREEN in either: {a.reason}" + ("" if a.reason == b.reason else f" / B: {b.reason}")
    if derived := [h for h, r in (("A", a), ("B", b)) if r.derived_from]:
        detail = "; ".join(filter(None, [f"{' and '.join(derived)} derived from a hand-made log", detail]))
    findings = [Finding(AGREE if a.verdict == b.verdict else DISAGREE, name, "verdict", str(a.verdict),
                        str(b.verdict), detail)]
    findings += _compare_tests(name, a, b) + _compare_record(name, a, b, tol)
    da, db = a.duration_s, b.duration_s
    if da and db is not None:
        ratio = db / da
        outside = ratio > tol.duration_ratio_warn or ratio < 1 / tol.duration_ratio_warn
        slow = outside and max(da, db) >= tol.duration_floor_s
        findings.append(Finding(WARN if slow else AGREE, name, "duration_s", round(da, 2), round(db, 2),
                                f"B/A = {ratio:.2f}" + (f" (outside x{tol.duration_ratio_warn:g})" if slow else "")))
    return findings


def compare_pictures(name: str, a: VerdictRecord, hub_a: Path, b: VerdictRecord, hub_b: Path) -> list[Finding]:
    """Each picture both runs made, pixel by pixel; identical pixels are required only when the loss is."""
    pics_a, pics_b = ({Path(f).name: f for f in r.figures} for r in (a, b))
    why_not = not_comparable(a, b)
    handmade = [h for h, r in (("A", a), ("B", b)) if r.derived_from and not r.figures]
    findings = []
    for pic in sorted(set(pics_a) | set(pics_b)):
        fa, fb = pics_a.get(pic), pics_b.get(pic)
        diff = picture_difference(hub_a / (fa or "-"), hub_b / (fb or "-"))
        if diff is None:
            status, detail = AGREE, "pixels identical"
        elif handmade:  # a hand-made hub keeps logs only: no picture to compare, which is no disagreement
            status, detail = WARN, f"hub {handmade[0]} is hand-made: it keeps no pictures"
        elif fa and fb and why_not:
            status, detail = WARN, f"{diff}; not enforced: {'; '.join(why_not)}"
        else:
            status, detail = DISAGREE, diff
        findings.append(Finding(status, name, f"picture {pic}", fa, fb, detail))
    return findings


def _pixels(path: Path) -> tuple[tuple[int, int], bytes]:
    from PIL import Image  # imported when comparing pictures: the rest of the harness needs no pillow
    with Image.open(path) as image:
        rgba = image.convert("RGBA")
    return rgba.size, rgba.tobytes()


def picture_difference(a: Path, b: Path) -> str | None:
    """None when two pictures have identical pixels (PNG bytes differ with metadata), else how they differ."""
    for label, path in (("A", a), ("B", b)):
        if not path.is_file():
            return f"missing in hub {label}"
    try:
        (size_a, data_a), (size_b, data_b) = _pixels(a), _pixels(b)
    except ImportError:
        same = a.read_bytes() == b.read_bytes()
        return None if same else "bytes differ (pillow is not installed: pixels not compared)"
    except OSError as exc:
        return f"not a readable picture ({exc})"
    if size_a != size_b:
        return f"sizes differ ({size_a[0]}x{size_a[1]} vs {size_b[0]}x{size_b[1]})"
    if data_a == data_b:
        return None
    changed = sum(1 for i in range(0, len(data_a), 4) if data_a[i:i + 4] != data_b[i:i + 4])
    return f"{changed / (size_a[0] * size_a[1]):.2%} of the pixels differ"


def compare_packages(a: HubView, b: HubView) -> list[Finding]:
    """Every installed distribution, when both hubs recorded them: drift names the packages."""
    if not (a.environment and b.environment and a.environment.packages and b.environment.packages):
        return []
    pa, pb = a.environment.packages, b.environment.packages
    changed = [f"{k} {pa[k]} -> {pb[k]}" for k in set(pa) & set(pb) if pa[k] != pb[k]]  # sorted below
    changed += [f"{k} only in A" for k in set(pa) - set(pb)] + [f"{k} only in B" for k in set(pb) - set(pa)]
    detail = f"{len(changed)} changed: {short_list(sorted(changed), 8)}" if changed else \
        f"{len(pa)} distributions, same versions"
    return [Finding(WARN if changed else AGREE, ENVIRONMENT, "packages", len(pa), len(pb), detail)]


def _env_value(hub: HubView, key: str) -> Any:
    values = list(dict.fromkeys(r.provenance.value(key) for r in hub.verdicts.values()))
    return values[0] if len(values) == 1 else values


def compare_environment(a: HubView, b: HubView) -> list[Finding]:
    """Environment and plan drift: warnings, never disagreements."""
    # a hand-made hub records no provenance: there is nothing to compare, say so once
    if handmade := [h for h, hub in (("A", a), ("B", b)) if hub.handmade]:
        return [Finding(WARN, ENVIRONMENT, "provenance", None, None,
                        f"hub {' and '.join(handmade)} is hand-made: commit, versions and platform were not recorded")]
    findings = []
    for key in ENV_KEYS:
        va, vb = _env_value(a, key), _env_value(b, key)
        if key == "git_dirty" and (va is not False or vb is not False):
            dirty = {h: sorted({f for r in hub.verdicts.values() for f in r.provenance.git.dirty_files})
                     for h, hub, v in (("A", a, va), ("B", b, vb)) if v is not False}
            detail = "; ".join(f"{h}: {short_list(files) or 'unknown'}" for h, files in dirty.items())
            findings.append(Finding(WARN, ENVIRONMENT, key, va, vb, f"tracked files differed from HEAD ({detail})"))
            continue
        if key == "threads":  # split between targets that ran side by side: compare target by target
            va, vb = ({n: r.provenance.threads for n, r in hub.verdicts.items()} for hub in (a, b))
        mixed = [h for h, v in (("A", va), ("B", vb)) if isinstance(v, list)]
        same = va == vb and not mixed
        detail = "" if same else f"changed during the run in {' and '.join(mixed)}" if mixed else "environment drift"
        findings.append(Finding(AGREE if same else WARN, ENVIRONMENT, key, va, vb, detail))
    if a.plan.path or b.plan.path:
        same = (a.plan.path, a.plan.sha256) == (b.plan.path, b.plan.sha256)
        where = a.plan.path if a.plan.path == b.plan.path else f"A: {a.plan.path}, B: {b.plan.path}"
        findings.append(Finding(AGREE if same else WARN, PLAN, "plan sha256", a.plan.sha256, b.plan.sha256,
                                where if same else f"different plan files ({where})"))
    return findings


def compare_hubs(a: HubView, b: HubView, tol: CompareSpec, source: str = "defaults") -> Comparison:
    """Compare two read hubs; disagreements never depend on log bytes or timestamps."""
    if a.overall != b.overall:
        overall = Finding(DISAGREE, HUB, "overall verdict", a.overall, b.overall,
                          f"A: {a.overall_reason} / B: {b.overall_reason}")
    else:
        overall = Finding(AGREE, HUB, "overall verdict", a.overall, b.overall, "" if a.overall == Verdict.GREEN else
                          f"not GREEN in either: {a.overall_reason}")
    findings = [overall] + [Finding(DISAGREE, HUB, "hand-made summary", n, None, n) for n in a.notes] \
        + [Finding(DISAGREE, HUB, "hand-made summary", None, n, n) for n in b.notes]
    for name in a.targets + [n for n in b.targets if n not in a.verdicts]:
        ra, rb = a.verdicts.get(name), b.verdicts.get(name)
        findings += compare_target(name, ra, rb, tol)
        if ra and rb and (ra.figures or rb.figures):
            findings += compare_pictures(name, ra, a.path, rb, b.path)
    return Comparison(a.path, b.path, tol, source, findings + compare_environment(a, b) + compare_packages(a, b),
                      (signer_of(a.path), signer_of(b.path)))


def signer_of(hub: Path) -> str:
    """Who signed a hub, checked against its own key (a trust file is `validate --trust`'s job)."""
    if not (hub / "attestation.json").is_file():
        return "unsigned"
    from harness.attest import check_signature
    check = check_signature(hub, trust=None, require=False)
    return f"signature INVALID ({check.problems[0]})" if check.problems else f"signed by {check.signer}"
