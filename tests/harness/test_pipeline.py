"""`harness pipeline` end to end on a synthetic project, its scheduler, interrupts, and the `python -m harness` dispatch."""

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

from harness import __main__ as cli
from harness import pipeline
from harness.plan import Target
from harness.fsio import HubWriteError
from harness.hubview import hash_tree
from harness.schema import HubFiles

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
                       targets.command("last", "print('done')", after=["left", "right"])], threads=2)
    (project / ".gitignore").write_text("reports/\nartifacts/\n")
    git_init(project)
    return path


def run(project: Path, plan: Path, *extra: str) -> int:
    parser = argparse.ArgumentParser()
    pipeline.add_arguments(parser)
    return pipeline.main(parser.parse_args(["--plan", str(plan), "--project", str(project), *extra]))


def test_green_run_prints_progress_then_hub_and_verdict_last(project, plan_path, capsys):
    assert run(project, plan_path, "--jobs", "2") == 0, capsys.readouterr()
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "verdict: GREEN"
    hub = project / lines[-2].removeprefix("hub: ")
    assert lines[-2].startswith("hub: reports/") and (hub / HubFiles.MANIFEST).is_file()
    assert "[1/4] unit started" in lines and any(line.startswith("[4/4] last GREEN") for line in lines)
    assert lines.index("[1/4] unit started") < lines.index("[4/4] last started")
    assert not (hub / HubFiles.INCOMPLETE).exists() and (hub / HubFiles.ENVIRONMENT).is_file()


def test_independent_targets_run_at_the_same_time_with_the_threads_split(project, plan_path, capsys):
    assert run(project, plan_path, "--jobs", "2") == 0
    artifacts = next((project / "artifacts").iterdir())
    (l0, l1), (r0, r1) = (json.loads((artifacts / f"{n}.json").read_text()) for n in ("left", "right"))
    assert l0 < r1 and r0 < l1, "left and right do not depend on each other: they must overlap"
    hub = project / capsys.readouterr().out.strip().splitlines()[-2].removeprefix("hub: ")
    threads = {n: json.loads((hub / HubFiles.verdict(n)).read_text())["provenance"]["threads"] for n in ("unit", "left", "last")}
    assert threads == {"unit": 2, "left": 1, "last": 2}


def test_one_job_runs_in_plan_order(project, plan_path):
    assert run(project, plan_path, "--jobs", "1") == 0
    artifacts = next((project / "artifacts").iterdir())
    (l0, l1), (r0, r1) = (json.loads((artifacts / f"{n}.json").read_text()) for n in ("left", "right"))
    assert l1 <= r0


def test_red_target_makes_the_run_red_and_later_targets_still_run(project, write_plan, targets, plan_path, capsys):
    plan = write_plan([targets.pytest("unit", f"{SYN}::test_fail"), targets.command("last", "print(1)", after=["unit"])],
                      name="red.toml")
    assert run(project, plan) == 1
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == "verdict: RED" and "[2/2] last GREEN" in out


def test_explicit_existing_hub_is_refused_before_anything_runs(project, plan_path, capsys):
    (project / "taken").mkdir()
    assert run(project, plan_path, "--hub", str(project / "taken")) == 2
    assert "exists already" in capsys.readouterr().err and not (project / "artifacts").exists()


def test_a_bad_project_or_target_is_one_error_line(project, plan_path, capsys):
    assert run(project / "nope", plan_path) == 2
    assert run(project, plan_path, "--targets", "ghost") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: pipeline: --project ") and "not a folder" in err[0]
    assert err[1].startswith("error: pipeline: ") and "no target 'ghost'" in err[1]


def test_json_format_is_one_parsable_object(project, plan_path, capsys):
    assert run(project, plan_path, "--format", "json", "--targets", "unit") == 1  # a partial run is not GREEN
    payload = json.loads(capsys.readouterr().out)
    assert payload["schema"] == "evidence-cli/1" and payload["command"] == "pipeline"
    assert [t["name"] for t in payload["targets"]] == ["unit", "left", "right", "last"]
    assert payload["targets"][0]["verdict"] == "GREEN" and "ledger untouched" in payload["ledger"]


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
    assert run(project, plan_path, "--targets", "unit") == 1  # a partial run: an earlier, finished hub
    [earlier] = list((project / "reports").glob("*/hub"))
    before = hash_tree(earlier)

    def full(path, text):
        raise HubWriteError(28, f"cannot write {path}: No space left on device; free some disk space")

    monkeypatch.setattr("harness.collate.atomic_write_text", full)
    capsys.readouterr()
    assert run(project, plan_path, "--targets", "unit") == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err and err.rstrip().endswith("verdict: INCOMPLETE")
    assert hash_tree(earlier) == before
    [new] = [h for h in (project / "reports").glob("*/hub") if h != earlier]
    assert (new / HubFiles.INCOMPLETE).exists(), "a hub whose collate failed stays visibly incomplete"


def test_scheduler_waits_for_after_and_splits_threads():
    order: list[tuple[str, int]] = []

    def one(target: Target, threads: int):
        order.append((target.name, threads))
        return target.name

    def t(name: str, *after: str) -> Target:
        return Target(name, name, "command", f"{name}.log", 1, "d", argv=("x",), after=after)

    results = pipeline.schedule([t("a"), t("b", "a"), t("c", "a"), t("d", "b", "c")], one, jobs=2, threads=2)
    assert set(results) == {"a", "b", "c", "d"}
    assert order[0] == ("a", 2) and {order[1], order[2]} == {("b", 1), ("c", 1)} and order[3] == ("d", 2)


def test_dispatch_reports_a_missing_command_module(monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMANDS, "validate", ("harness.no_such_module", "x"))
    assert cli.main(["validate", "somewhere"]) == 2
    assert "command validate is not available" in capsys.readouterr().err


def test_dispatch_help_lists_commands_without_importing_them():
    out = subprocess.run([sys.executable, "-m", "harness", "-h"], capture_output=True, text=True)
    assert out.returncode == 0 and all(name in out.stdout for name in cli.COMMANDS)
    bad = subprocess.run([sys.executable, "-m", "harness", "frobnicate"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
