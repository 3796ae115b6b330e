"""Write a GitHub Actions workflow that runs each plan target as its own job, then merges the parts.

Why: one job per target spreads a plan over runners (a CUDA target on a GPU runner, the rest on
hosted CPU runners) while the evidence stays one hub: every job uploads its *part*, and a final
`merge` job joins the parts, collates and validates them. The plan's `after` becomes `needs:`,
so GitHub skips a target whose predecessor failed and the merge reports it NOT RUN.

Stdlib only: the workflow is built as plain data and written as YAML by `_emit`, every value as a
JSON string or list (JSON flow values are valid YAML), so no quoting rule of YAML can bite.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from harness.plan import EvidencePlan, Target

ACTIONS = {  # the newest majors on node24 (actionlint flags node20 as deprecated)
    "checkout": "actions/checkout@v6",
    "python": "actions/setup-python@v6",
    "upload": "actions/upload-artifact@v6",
    "download": "actions/download-artifact@v7",
}
DEFAULT_RUNNER = "ubuntu-latest"
MERGE = "merge"
HUB = "evidence-hub"
PARTS = "parts"
_JOB_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")  # GitHub's rule for a job id
_YAML11_BOOLS = {"on", "off", "yes", "no", "y", "n", "true", "false"}  # keys a YAML 1.1 reader turns into bools


def job_id(name: str) -> str:
    """A valid GitHub job id for a target name: '.' becomes '_', a leading digit gets a '_' before it."""
    jid = re.sub(r"[^A-Za-z0-9_-]", "_", name)
    return jid if _JOB_ID.match(jid) else f"_{jid}"


def job_ids(plan: EvidencePlan) -> dict[str, str]:
    """Target name -> job id; ValueError when two names map to one id (GitHub ignores case) or to `merge`."""
    ids: dict[str, str] = {}
    taken = {MERGE: "the merge job"}
    for target in plan.targets:
        jid = job_id(target.name)
        if jid.lower() in taken:
            raise ValueError(f"{plan.path}:{target.line}: target {target.name!r} gets the GitHub job id {jid!r}, "
                             f"already used by {taken[jid.lower()]}; rename one of them")
        taken[jid.lower()] = f"target {target.name!r}"
        ids[target.name] = jid
    return ids


def runs_on(plan: EvidencePlan, target: Target) -> str:
    """The runner label of a target's job; a CUDA target must name one (hosted runners have no GPU)."""
    if target.runner:
        return target.runner
    if target.device == "cuda":
        raise ValueError(f"{plan.path}:{target.line}: target {target.name!r} has device = \"cuda\" but no runner; "
                         "set runner = \"<label of a runner with a CUDA GPU>\" in its [[targets]] table")
    return DEFAULT_RUNNER


def job_commands(plan: EvidencePlan, job: str, *, plan_arg: str) -> list[str]:
    """The shell commands of one job's `run:` steps, in order: a target's name, or "merge".

    The workflow holds exactly these strings, so a test (or a person) can run a job here.
    """
    if job == MERGE:
        harness = ".venv-tools/bin/python -m harness"  # `make tools` bootstraps it from constraints.txt
        return ["make tools",
                f"{harness} merge {PARTS}/* --into {HUB}",
                f"{harness} validate {HUB}",
                f'cat {HUB}/summary.md >> "$GITHUB_STEP_SUMMARY"']
    target = plan.target(job)
    part = shlex.quote(f"{PARTS}/{target.name}")
    return [f"make {shlex.quote(target.session)} PART={part} PLAN={shlex.quote(plan_arg)} NO_LEDGER=1"]


def github_workflow(plan: EvidencePlan, *, plan_arg: str, python: str = "3.11") -> str:
    """The workflow text: one job per target (needs = its `after`), then `merge` joining every part."""
    ids = job_ids(plan)
    setup = [{"uses": ACTIONS["checkout"]},
             {"uses": ACTIONS["python"], "with": {"python-version": python}}]
    jobs: dict[str, Any] = {}
    for target in plan.targets:
        job: dict[str, Any] = {"name": target.name, "runs-on": runs_on(plan, target)}
        if target.after:
            job["needs"] = [ids[name] for name in target.after]
        run, = job_commands(plan, target.name, plan_arg=plan_arg)
        job["steps"] = [*setup, {"name": f"run {target.name} into {PARTS}/{target.name}", "run": run},
                        _upload(f"part-{target.name}", f"{PARTS}/{target.name}")]
        jobs[ids[target.name]] = job
    make_tools, merge, validate, summary = job_commands(plan, MERGE, plan_arg=plan_arg)
    jobs[MERGE] = {
        "name": "merge the parts into one hub", "if": "always()", "needs": list(ids.values()),
        "runs-on": DEFAULT_RUNNER,
        "steps": [*setup,
                  {"uses": ACTIONS["download"], "with": {"pattern": "part-*", "path": PARTS}},
                  {"name": "bootstrap the harness tools", "run": make_tools},
                  {"name": "merge the parts into the hub", "run": merge},
                  {"name": "validate the hub", "if": "always()", "run": validate},
                  {"name": "summary", "if": "always()", "run": summary},
                  _upload(HUB, HUB), _upload("junit", f"{HUB}/junit.xml")],
    }
    workflow = {"name": f"evidence: {plan.id}",
                "on": {"push": {}, "workflow_dispatch": {}},  # no pull_request: fork code on self-hosted runners
                "permissions": {"contents": "read"},
                "jobs": jobs}
    header = [f"# Generated by `python -m harness ci github --plan {plan_arg}` from plan {json.dumps(plan.id)}.",
              "# Edit the plan and regenerate rather than editing this file (docs/scale.md)."]
    return "\n".join([*header, *_emit(workflow)]) + "\n"


def _upload(name: str, path: str) -> dict[str, Any]:
    """An upload that runs even after a failed step, so a RED part still reaches the merge."""
    return {"name": f"upload {name}", "if": "always()", "uses": ACTIONS["upload"],
            "with": {"name": name, "path": path}}


def _is_block(value: Any) -> bool:
    """Mappings holding containers, and lists of mappings, are YAML blocks; the rest JSON flow (a step is a block)."""
    if isinstance(value, dict):
        return any(isinstance(v, (dict, list)) for v in value.values())
    return isinstance(value, list) and any(isinstance(v, dict) for v in value)


def _emit(value: dict[str, Any] | list[Any], indent: int = 0) -> list[str]:
    pad, lines = " " * indent, []
    if isinstance(value, list):
        for item in value:
            first, *rest = _emit(item, indent + 2) if isinstance(item, dict) else [_flow(item)]
            lines += [f"{pad}- {first.lstrip()}", *rest]
        return lines
    for key, item in value.items():
        key = json.dumps(key) if key.lower() in _YAML11_BOOLS else key
        if _is_block(item):
            lines += [f"{pad}{key}:", *_emit(item, indent + 2)]
        else:
            lines.append(f"{pad}{key}: {_flow(item)}")
    return lines


def _flow(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
