"""`harness pipeline`: the driver around one nox invocation, end to end on a synthetic project; the command line."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from factory import LEDGER_BASELINE, cli

from harness import __main__
from harness.fsio import HubWriteError
from harness.hubview import hash_tree
from harness.schema import HubFiles, Manifest

SYN = "tests/test_synthetic.py"


def git_init(project: Path) -> None:
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"]):
        subprocess.run(["git", "-C", str(project), *args], check=True, capture_output=True)


def stamp(name: str) -> str:
    """A command target that records when it ran (for the parallelism test)."""
    return (f"import json, time; t0 = time.time(); time.sleep(0.5); "
            f"open('{{artifacts}}/{name}.json', 'w').write(json.dumps([t0, time.time()]))")


@pytest.fixture
def plan_path(project, write_plan, targets, monkeypatch):
    monkeypatch.setenv("EVIDENCE_PYTHON", sys.executable)  # no venv is built for the synthetic project
    path = write_plan([targets.pytest("unit", f"{SYN}::test_pass"),
                       targets.command("left", stamp("left"), after=["unit"]),
                       targets.command("right", stamp("right"), after=["unit"]),
                       targets.command("last", "print('done')", after=["left", "right"])])
    text = path.read_text().replace("threads = 1", "threads = 2")
    path.write_text(text)
    (project / ".gitignore").write_text("reports/\nartifacts/\n")
    git_init(project)
    return path


def run(project: Path, plan: Path, *extra: str) -> int:
    return cli("pipeline", "--plan", plan, "--project", project, *extra)


def hub_of(out: str, project: Path) -> Path:
    lines = out.strip().splitlines()
    assert lines[-2].startswith("hub: "), lines[-3:]
    return project / lines[-2].removeprefix("hub: ")


def test_green_run_goes_through_nox_and_ends_with_hub_and_verdict(project, plan_path, capsys):
    assert run(project, plan_path, "--jobs", "2") == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == "verdict: GREEN"
    hub = hub_of(out, project)
    assert "Starting session unit..." in out and "[last] GREEN" in out, "nox's own lines, then each verdict"
    assert out.index("Starting session unit") < out.index("Starting session last")
    assert not (hub / HubFiles.INCOMPLETE).exists() and (hub / HubFiles.ENVIRONMENT).is_file()
    report = json.loads((hub / HubFiles.NOX_REPORT).read_text())
    assert [s["name"] for s in report["sessions"]] == ["unit", "left", "right", "last"]
    assert HubFiles.NOX_REPORT in {e.path for e in Manifest.load(hub).files}, "nox's report is a hub file"


def test_independent_targets_run_at_the_same_time_with_the_threads_split(project, plan_path, capsys):
    assert run(project, plan_path, "--jobs", "2") == 0
    artifacts = next((project / "artifacts").iterdir())
    (l0, l1), (r0, r1) = (json.loads((artifacts / f"{n}.json").read_text()) for n in ("left", "right"))
    assert l0 < r1 and r0 < l1, "left and right do not depend on each other: they must overlap"
    hub = hub_of(capsys.readouterr().out, project)
    threads = {n: json.loads((hub / HubFiles.verdict(n)).read_text())["provenance"]["threads"] for n in ("unit", "left", "last")}
    assert threads == {"unit": 2, "left": 1, "last": 2}


def test_one_job_runs_one_target_at_a_time(project, plan_path):
    assert run(project, plan_path, "--jobs", "1") == 0
    artifacts = next((project / "artifacts").iterdir())
    (l0, l1), (r0, r1) = (json.loads((artifacts / f"{n}.json").read_text()) for n in ("left", "right"))
    assert l1 <= r0 or r1 <= l0


def test_a_red_first_target_stops_only_the_targets_after_it(project, write_plan, targets, plan_path, capsys):
    """The acceptance case: dependents NOT RUN with the reason, the others run, blocker.log, B3 [P], exit != 0."""
    for name in ("plan.md", "fix_plan.md"):
        (project / "docs" / name).parent.mkdir(exist_ok=True)
        (project / "docs" / name).write_bytes((LEDGER_BASELINE / name).read_bytes())
    plan = write_plan([targets.pytest("unit", f"{SYN}::test_fail"), targets.command("dep", "print(1)", after=["unit"]),
                       targets.command("later", "print(2)", after=["dep"]), targets.command("alone", "print(3)")],
                      name="red.toml")
    plan.write_text(plan.read_text() + '\n[ledger]\nplan_file = "docs/plan.md"\nrow = "B3"\nfix_plan = "docs/fix_plan.md"\n')
    assert run(project, plan) == 1
    out = capsys.readouterr().out
    hub = hub_of(out, project)
    verdicts = {t.name: (t.verdict, t.reason) for t in Manifest.load(hub).targets}
    assert verdicts["unit"][0] == "RED" and verdicts["alone"][0] == "GREEN", verdicts
    assert verdicts["dep"] == ("NOT RUN", "not run: unit was RED"), verdicts
    assert verdicts["later"] == ("NOT RUN", "not run: dep was NOT RUN"), verdicts
    assert (hub / HubFiles.BLOCKER).is_file() and out.strip().endswith("verdict: RED")
    row = next(line for line in (project / "docs/plan.md").read_text().splitlines() if line.startswith("| B3 "))
    assert "| [P] | [blocker.log](" in row, row
    assert "evidence: **BLOCKED**" in (project / "docs/fix_plan.md").read_text()


def test_one_target_alone_makes_a_partial_hub_that_can_be_green(project, plan_path, capsys):
    assert run(project, plan_path, "--targets", "last", "--no-dependencies") == 0
    out = capsys.readouterr().out
    hub = hub_of(out, project)
    manifest = Manifest.load(hub)
    assert [t.name for t in manifest.targets] == ["last"] and manifest.partial_run and manifest.overall_verdict == "GREEN"
    assert out.strip().endswith("verdict: GREEN (partial: 1 of 4 plan targets)") and "ledger untouched" in out
    assert cli("validate", hub) == 0


def test_a_part_holds_one_target_in_the_folder_named(project, plan_path, tmp_path, capsys):
    assert run(project, plan_path, "--targets", "left", "--part", str(tmp_path / "part-left")) == 0
    part = tmp_path / "part-left"
    assert json.loads((part / HubFiles.RUN).read_text())["part"] is True and (part / "left.log").is_file()
    assert run(project, plan_path, "--targets", "left", "last", "--part", str(tmp_path / "two")) == 2
    assert "a part holds one target" in capsys.readouterr().err


def test_explicit_existing_hub_is_refused_before_anything_runs(project, plan_path, capsys):
    (project / "taken").mkdir()
    assert run(project, plan_path, "--hub", str(project / "taken")) == 2
    assert "exists already" in capsys.readouterr().err and not (project / "artifacts").exists()


@pytest.mark.parametrize("jobs", ["0", "-1", "many"])
def test_a_bad_jobs_value_is_one_error_line_before_any_hub(project, plan_path, capsys, jobs):
    assert run(project, plan_path, "--jobs", jobs) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: pipeline: --jobs") and not (project / "reports").exists()


def test_a_bad_project_or_target_is_one_error_line(project, plan_path, capsys):
    assert run(project / "nope", plan_path) == 2
    assert run(project, plan_path, "--targets", "ghost") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: pipeline: --project ") and "not a folder" in err[0]
    assert err[1].startswith("error: pipeline: ") and "no target 'ghost'" in err[1]


def test_json_format_is_one_parsable_object(project, plan_path, capsys):
    assert run(project, plan_path, "--format", "json", "--targets", "unit") == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["schema"] == "evidence-cli/1" and payload["command"] == "pipeline" and payload["partial"] is True
    assert [t["name"] for t in payload["targets"]] == ["unit"] and "ledger untouched" in payload["ledger"]


def _as_typed_in_a_terminal() -> None:
    """Default signal dispositions: a suite started in the background (`cmd &`) inherits SIGINT ignored,
    and a Python started that way keeps ignoring Ctrl-C, as it should."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_leaves_an_incomplete_hub_and_no_traceback(project, write_plan, targets, plan_path, sig):
    plan = write_plan([targets.command("slow", "import time; print('working', flush=True); time.sleep(60)")],
                      name="slow.toml")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen([sys.executable, "-m", "harness", "pipeline", "--plan", str(plan), "--project", str(project)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            preexec_fn=_as_typed_in_a_terminal)
    deadline = time.monotonic() + 30
    while not list(project.glob("reports/*/hub/slow.log.partial")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None and list(project.glob("reports/*/hub/slow.log.partial")), "the target never started"
    time.sleep(0.5)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == (130 if sig == signal.SIGINT else 143), out
    assert "Traceback" not in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("verdict: INCOMPLETE (interrupted; hub reports/"), last
    hub = project / last.split("hub ")[1].rstrip(")")
    assert (hub / HubFiles.INCOMPLETE).exists() and (hub / "slow.log.partial").is_file()
    assert (hub / HubFiles.SUMMARY).is_file(), "an interrupted hub is still summarised (and says so)"


def test_a_full_disk_while_collating_is_a_clear_error_and_earlier_hubs_are_untouched(project, plan_path, monkeypatch,
                                                                                       capsys):
    """The failure is injected (CI runs as root, so a read-only folder would not fail)."""
    assert run(project, plan_path, "--targets", "unit") == 0  # a partial run: an earlier, finished hub
    [earlier] = list((project / "reports").glob("*/hub"))
    before = hash_tree(earlier)

    def full(path, text):
        raise HubWriteError(28, f"cannot write {path}: No space left on device; free some disk space")

    monkeypatch.setattr("harness.collate.atomic_write_text", full)
    capsys.readouterr()
    assert run(project, plan_path, "--targets", "unit") == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
    assert hash_tree(earlier) == before
    [new] = [h for h in (project / "reports").glob("*/hub") if h != earlier]
    assert (new / HubFiles.INCOMPLETE).exists(), "a hub whose collate failed stays visibly incomplete"


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "harness", "-h"], capture_output=True, text=True)
    assert out.returncode == 0 and all(name in out.stdout for name in __main__.COMMANDS)
    bad = subprocess.run([sys.executable, "-m", "harness", "frobnicate"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
