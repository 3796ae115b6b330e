"""`merge`: parts made in fresh clones (one "machine" each) join into one hub that validates and compares like a
one-machine hub; the CI workflow's job commands, run here in fresh clones, end GREEN; bad parts are refused.

Real throughout: a committed project (with the harness in it, as the CI checkout has), `git clone`, the driver
and nox for every part, the real merge, validate and compare.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from factory import cli, git

from harness.cigithub import MERGE, job_commands
from harness.context import HOME
from harness.plan import load_plan
from harness.schema import HubFiles, Manifest, RunRecord

pytestmark = pytest.mark.e2e  # real runs in fresh git clones, one per machine

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAEElEQVR4nGP4z8AARAwQCgAf7gP9i18U1AAAAABJRU5ErkJggg=="
ORDER = ("unit", "left", "right", "last")  # the seed's shape: one first, two after it, one after all
HARNESS_FILES = ("harness", "noxfile.py", "Makefile", "constraints.txt")


def _plan(first: str, plan_id: str) -> str:
    """A four-target plan: a pytest target, a command with an output, one with a picture, one after both."""
    left = "import json; open('{artifacts}/left.json', 'w').write(json.dumps([1, 2]))"
    right = f"import base64; open('{{artifacts}}/right.png', 'wb').write(base64.b64decode('{PNG}'))"
    targets = [dict(name="unit", kind="pytest", selector=f"tests/test_ok.py::{first}"),
               dict(name="left", kind="command", argv=["{python}", "-c", left], after=["unit"],
                    expected_outputs=["{artifacts}/left.json"]),
               dict(name="right", kind="command", argv=["{python}", "-c", right], after=["unit"],
                    figures=["{artifacts}/right.png"]),
               dict(name="last", kind="command", argv=["{python}", "-c", "print('done')"], after=["left", "right"])]
    lines = ["[plan]", f"id = {json.dumps(plan_id)}", 'title = "fan-out"', 'hub = "reports/{timestamp}/hub"',
             'artifacts = "artifacts/{timestamp}"', "", "[environment]", "seed = 0", "threads = 1", ""]
    for t in targets:
        t |= dict(session=t["name"], log=f"{t['name']}.log", timeout=60, description=f"{t['name']} target")
        lines += ["[[targets]]", *(f"{k} = {json.dumps(v)}" for k, v in t.items()), ""]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository every machine clones: a GREEN and a RED plan, a test file, and the harness itself."""
    root = tmp_path_factory.mktemp("origin") / "repo"
    (root / "tests").mkdir(parents=True)
    (root / "tests" / "test_ok.py").write_text("def test_ok():\n    pass\n\n\ndef test_bad():\n    assert 1 == 2\n")
    (root / "plan.toml").write_text(_plan("test_ok", "MERGE/1"))
    (root / "red.toml").write_text(_plan("test_bad", "MERGE/RED"))
    (root / ".gitignore").write_text("reports/\nartifacts/\n.venv-tools/\n.nox/\n__pycache__/\n")
    for name in HARNESS_FILES:
        src = HOME / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, root / name)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "project")
    return root


def clone(origin: Path, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(origin), str(dest)], check=True, capture_output=True, timeout=60)
    return dest


@pytest.fixture(scope="module")
def machines(origin: Path, tmp_path_factory: pytest.TempPathFactory):
    """Run `fan_out(plan, targets)`: each target in its own fresh clone, into a part; returns the parts."""
    base = tmp_path_factory.mktemp("machines")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EVIDENCE_PYTHON", sys.executable)  # no evidence venv is built for the test project

        def fan_out(plan: str, targets: tuple[str, ...], tag: str, expect: dict[str, int] | None = None) -> list[Path]:
            parts = []
            for name in targets:
                project = clone(origin, base / f"{tag}-{name}")
                part = base / f"{tag}-parts" / name
                code = cli("pipeline", "--plan", project / plan, "--project", project, "--targets", name,
                           "--part", part)
                assert code == (expect or {}).get(name, 0), f"part {name} of {plan} exited {code}"
                parts.append(part)
            return parts

        yield fan_out, base


@pytest.fixture(scope="module")
def green_parts(machines) -> list[Path]:
    fan_out, _ = machines
    return fan_out("plan.toml", ORDER, "green")


def one_machine(origin: Path, base: Path, plan: str, tag: str) -> Path:
    project = clone(origin, base / f"{tag}-one")
    code = cli("pipeline", "--plan", project / plan, "--project", project, "--no-ledger")
    runs = sorted((project / "reports").glob("*/hub"))
    assert len(runs) == 1 and code in (0, 1), f"one-machine run of {plan} exited {code}"
    return runs[0]


def merge_into(origin: Path, base: Path, parts: list[Path], plan: str, tag: str, *extra: str) -> tuple[int, Path]:
    project = clone(origin, base / f"{tag}-merge")
    code = cli("merge", *parts, "--into", "merged", "--plan", project / plan, "--project", project, *extra)
    return code, project / "merged"


def verdicts(hub: Path) -> dict[str, tuple[str | None, str]]:
    return {t.name: (t.verdict, t.reason) for t in Manifest.load(hub).targets}


def test_four_machines_merge_into_a_green_hub_that_agrees_with_one_machine(origin, machines, green_parts, capsys):
    _, base = machines
    code, hub = merge_into(origin, base, green_parts, "plan.toml", "green")
    out = capsys.readouterr().out
    assert code == 0 and out.strip().endswith("verdict: GREEN"), out
    assert set(verdicts(hub)) == set(ORDER) and {v for v, _ in verdicts(hub).values()} == {"GREEN"}
    for name in ORDER:  # copied byte for byte: the seals hold
        part = next(p for p in green_parts if p.name == name)
        assert (hub / f"{name}.log").read_bytes() == (part / f"{name}.log").read_bytes()
        assert RunRecord.load(hub / HubFiles.PARTS / name).targets == (name,)
        assert (hub / HubFiles.PARTS / name / HubFiles.ENVIRONMENT).is_file()
    assert (hub / "figures" / "right" / "right.png").is_file()
    summary = (hub / HubFiles.SUMMARY).read_text()
    assert "## Where each target ran" in summary and os.uname().nodename in summary, summary
    external = {e.path: e for e in Manifest.load(hub).external}
    assert any(p.endswith("/left.json") and e.sha256 for p, e in external.items()), external
    assert any(p.endswith("/pytest/unit.json") for p in external), "the part's pytest outcomes are vouched for"
    assert cli("validate", hub) == 0
    assert "not present here" in capsys.readouterr().out, "other machines' artifacts are absent here, and said so"
    reference = one_machine(origin, base, "plan.toml", "green")
    capsys.readouterr()
    assert cli("compare", reference, hub) == 0, capsys.readouterr().out
    assert "result: AGREE" in capsys.readouterr().out


def test_a_red_first_target_fanned_out_gives_the_same_not_run_records_as_one_machine(origin, machines, capsys):
    fan_out, base = machines
    parts = fan_out("red.toml", ("unit",), "red", expect={"unit": 1})  # GitHub skips the jobs that need it
    code, hub = merge_into(origin, base, parts, "red.toml", "red")
    assert code == 1 and capsys.readouterr().out.strip().endswith("verdict: RED")
    reference = one_machine(origin, base, "red.toml", "red")
    assert verdicts(hub) == verdicts(reference), "NOT RUN (and why) as on one machine"
    assert verdicts(hub)["left"] == ("NOT RUN", "not run: unit was RED")
    assert verdicts(hub)["last"][0] == "NOT RUN"
    capsys.readouterr()
    assert cli("compare", reference, hub) == 0 and "result: AGREE" in capsys.readouterr().out


def _refused(capsys: pytest.CaptureFixture[str], code: int, expected: str) -> None:
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: merge: "), err
    assert expected in err, f"expected {expected!r} in {err!r}"


def test_parts_of_another_commit_plan_or_project_are_refused(origin, machines, green_parts, tmp_path, capsys):
    fan_out, base = machines
    later = clone(origin, tmp_path / "later")
    (later / "README").write_text("a later commit\n")
    git(later, "add", "README")
    git(later, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "later")
    moved = tmp_path / "moved-part"
    assert cli("pipeline", "--plan", later / "plan.toml", "--project", later, "--targets", "unit", "--part", moved) == 0
    code, hub = merge_into(origin, tmp_path, [moved, *green_parts[1:]], "plan.toml", "commit")
    _refused(capsys, code, "made on commit")
    assert not hub.exists(), "nothing is written when a part is refused"
    red_unit = fan_out("red.toml", ("unit",), "plan", expect={"unit": 1})
    _refused(capsys, merge_into(origin, tmp_path, [*red_unit, *green_parts[1:]], "plan.toml", "plan")[0],
             "made with plan MERGE/RED")
    stranger = tmp_path / "stranger"
    shutil.copytree(origin, stranger, ignore=shutil.ignore_patterns(".git"))
    git(stranger, "init", "-q")
    git(stranger, "add", "-A")
    git(stranger, "-c", "user.name=u", "-c", "user.email=u@u", "commit", "-qm", "same files, another history")
    _refused(capsys, cli("merge", *green_parts, "--into", "m", "--plan", stranger / "plan.toml", "--project", stranger),
             "a part of another project")


def test_a_target_twice_a_damaged_part_and_a_hub_that_is_no_part_are_refused(origin, green_parts, tmp_path, capsys):
    _refused(capsys, merge_into(origin, tmp_path, [*green_parts, green_parts[0]], "plan.toml", "twice")[0],
             "target 'unit' is in the part")
    damaged = tmp_path / "damaged"
    shutil.copytree(green_parts[1], damaged)
    log = damaged / "left.log"
    log.write_bytes(log.read_bytes().replace(b"left", b"LEFT", 1))
    _refused(capsys, merge_into(origin, tmp_path, [green_parts[0], damaged], "plan.toml", "damaged")[0],
             "damaged part: left.log")
    _refused(capsys, merge_into(origin, tmp_path, [tmp_path / "nowhere"], "plan.toml", "nothing")[0], "not a part")
    hub = merge_into(origin, tmp_path, green_parts, "plan.toml", "whole")[1]
    capsys.readouterr()
    _refused(capsys, merge_into(origin, tmp_path, [hub], "plan.toml", "hub")[0], "not a part")
    again = cli("merge", *green_parts, "--into", "merged", "--plan", hub.parent / "plan.toml", "--project", hub.parent)
    _refused(capsys, again, "exists already; a hub is never overwritten")


def test_ci_command_writes_the_workflow_and_refuses_a_plan_it_cannot_follow(origin, tmp_path, capsys):
    out = tmp_path / "evidence.yml"
    assert cli("ci", "github", "--plan", origin / "plan.toml", "--output", out) == 0
    assert out.read_text().startswith(f"# Generated by `python -m harness ci github --plan {origin / 'plan.toml'}`")
    assert "4 target job(s) and the merge job" in capsys.readouterr().out
    gpu = tmp_path / "gpu.toml"
    gpu.write_text((origin / "plan.toml").read_text().replace('name = "last"', 'name = "last"\ndevice = "cuda"'))
    code = cli("ci", "github", "--plan", gpu, "--output", tmp_path / "gpu.yml")
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ci: ") and "has device = \"cuda\" but no runner" in err, err


def _job_env(tmp_path: Path, job: str) -> dict[str, str]:
    """A runner's environment: nothing of this test run's harness (PYTHONPATH, make, EVIDENCE_*) leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVIDENCE_", "MAKE", "MFLAGS", "PYTHONPATH"))}
    return env | {"EVIDENCE_PYTHON": sys.executable, "RUNNER_NAME": f"runner-{job}",
                  "GITHUB_STEP_SUMMARY": str(tmp_path / f"step-summary-{job}.md")}


def _run_job(commands: list[str], cwd: Path, env: dict[str, str]) -> None:
    for command in commands:
        done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
                              stdin=subprocess.DEVNULL)
        tail = (done.stdout + done.stderr)[-4000:]
        assert done.returncode == 0, f"`{command}` exited {done.returncode}:\n{tail}"


def test_the_workflow_jobs_run_here_in_fresh_clones_end_green(origin, tmp_path):
    """Each job's `run:` commands in its own clone; the upload/download actions become folder copies."""
    plan = load_plan(origin / "plan.toml")
    merger = clone(origin, tmp_path / "merge-job")
    for target in plan.targets:  # in the order `needs:` allows
        runner = clone(origin, tmp_path / f"job-{target.name}")
        _run_job(job_commands(plan, target.name, plan_arg="plan.toml"), runner, _job_env(tmp_path, target.name))
        shutil.copytree(runner / "parts" / target.name, merger / "parts" / f"part-{target.name}",
                        ignore=shutil.ignore_patterns(".*"))  # upload-artifact leaves hidden files out
    _run_job(job_commands(plan, MERGE, plan_arg="plan.toml"), merger, _job_env(tmp_path, MERGE))
    hub = merger / "evidence-hub"
    assert Manifest.load(hub).overall_verdict == "GREEN"
    assert {o for o in RunRecord.load(hub).targets} == set(ORDER)
    summary = (hub / HubFiles.SUMMARY).read_text()
    assert all(f"runner-{name}" in summary for name in ORDER), "the summary says which runner ran each target"
    assert summary in (tmp_path / f"step-summary-{MERGE}.md").read_text()
