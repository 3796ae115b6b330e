"""Trust I: a hub is untrusted input, and a run is watched for the whole of its length.

One test (or a few) per finding of the issue "Trust I" (docs/reliability.md, section "Trust I"),
each failing on 29c64cb and passing now. Real commands where possible: `python -m harness ...`
(`cli`), real pipeline runs on a synthetic project, hubs from tests/harness/factory.py.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from factory import (FIX_PLAN, HOME, LOGS, PLAN, PLAN_MD, PLAN_TOML, cli, collated, context, git, make_hub,
                     make_project, plan_text, row_state, table_for_command)

from harness.guard import ProductionWatch
from harness.hub import create_hub
from harness.schema import FileEntry, HubFiles, Manifest, VerdictRecord

@pytest.fixture(autouse=True)
def evidence_python(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVIDENCE_PYTHON", sys.executable)  # no venv is built for the synthetic projects


LEDGER = f'\n[ledger]\nplan_file = "{PLAN_MD}"\nrow = "B3"\nfix_plan = "{FIX_PLAN}"\n'


def real_project(tmp_path: Path, *targets: dict) -> tuple[Path, Path]:
    """A committed project (src/pkg/core.py, the ledger documents) whose plan holds `targets`, ledger on."""
    root = make_project(tmp_path / "proj", plan_text(list(targets)) + LEDGER)
    (root / ".gitignore").write_text("artifacts/\nreports/\n__pycache__/\n")
    git(root, "commit", "-qam", "ignore what runs leave")
    return root, root / PLAN_TOML


def pipeline(root: Path, plan: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, Path, Manifest]:
    code = cli("pipeline", "--plan", plan, "--project", root)
    out = capsys.readouterr().out
    hub = root / next(line for line in out.splitlines() if line.startswith("hub: ")).removeprefix("hub: ")
    return code, hub, Manifest.load(hub)


# ----------------------------------------------------------------- 5. the guard watches the whole run

EDIT_AND_RESTORE = ("import pathlib; p = pathlib.Path('src/pkg/core.py'); b = p.read_bytes(); "
                    "p.write_bytes(b'GRIDSIZE = 1  # fixed for the evidence\\n'); p.write_bytes(b)")
ADD_AND_REMOVE = "import pathlib; p = pathlib.Path('src/pkg/patch.py'); p.write_text('GRIDSIZE = 1\\n'); p.unlink()"
PYCACHE = ("import pathlib; d = pathlib.Path('src/pkg/__pycache__'); d.mkdir(); "
           "(d / 'core.cpython-311.pyc').write_bytes(b'cache'); (d / 'core.cpython-311.pyc').unlink()")


@pytest.mark.parametrize(("code", "written"), [(EDIT_AND_RESTORE, "src/pkg/core.py"),
                                               (ADD_AND_REMOVE, "src/pkg/patch.py")],
                         ids=["edit-and-restore", "untracked-file-added-and-removed"])
def test_a_target_that_edits_src_and_restores_it_makes_the_hub_red(tmp_path: Path, code: str, written: str,
                                                                   capsys) -> None:
    root, plan = real_project(tmp_path, table_for_command("sneak", code))
    exit_code, hub, manifest = pipeline(root, plan, capsys)
    assert git(root, "status", "--porcelain", "--untracked-files=all", "src") == "", "src/ is as it was, to git"
    assert (exit_code, manifest.overall_verdict) == (1, "RED"), manifest.overall_reason
    assert written in manifest.overall_reason and manifest.src_changes == {"written during the run": [written]}, \
        (manifest.overall_reason, manifest.src_changes)
    assert row_state(root) == "[P]" and "evidence: **BLOCKED**" in (root / FIX_PLAN).read_text(), "B3 is not marked"


def test_a_target_writing_pycache_under_src_stays_green(tmp_path: Path, capsys) -> None:
    root, plan = real_project(tmp_path, table_for_command("cache", PYCACHE))
    code, hub, manifest = pipeline(root, plan, capsys)
    assert (code, manifest.overall_verdict) == (0, "GREEN"), manifest.overall_reason
    assert row_state(root) == "[x]", "git ignores src/pkg/__pycache__/: the hub is GREEN and marks B3"


def change(root: Path, how: str) -> None:
    """Change src/pkg/core.py and undo it at once, three ways."""
    core = root / "src/pkg/core.py"
    if how == "rewrite":
        data = core.read_bytes()
        core.write_bytes(b"GRIDSIZE = 1\n")
        core.write_bytes(data)
    elif how == "move-out-and-back":  # watchdog holds a move out for 0.5 s, waiting for its pair
        core.rename(root / "core.py")
        (root / "core.py").rename(core)
    else:
        core.chmod(0o755)
        core.chmod(0o644)


@pytest.mark.parametrize("how", ["rewrite", "move-out-and-back", "chmod"])
def test_the_watch_sees_a_change_undone_just_before_it_ends(root: Path, how: str) -> None:
    with ProductionWatch(root, ("src",)) as watch:
        change(root, how)
    assert watch.written == ("src/pkg/core.py",), f"{how}: the flush at the end must let every event through"


OVERFLOW = "Inotify queue overflowed; filesystem events were lost"  # what watchdog logs when the kernel drops events


def test_events_the_watcher_lost_count_as_a_write(root: Path) -> None:
    with ProductionWatch(root, ("src",)) as watch:
        logging.getLogger("watchdog.observers.inotify_c").warning(OVERFLOW)
    assert watch.written == (f"(writes not all seen: {OVERFLOW})",)


# ----------------------------------------------------------------- 3. validate reads only the hub (and its project)

def add_entry(hub: Path, kind: str, rel: str, real: Path) -> None:
    """List `rel` in the hub's manifest with the real size and sha256 of `real` (a careful forger's entry)."""
    m = Manifest.load(hub)
    entry = FileEntry(rel, real.stat().st_size, hashlib.sha256(real.read_bytes()).hexdigest(), "other")
    replace(m, **{kind: getattr(m, kind) + (entry,)}).write(hub)


@pytest.mark.parametrize("how", ["dot-dot", "absolute"])
def test_a_manifest_entry_outside_the_hub_is_invalid(ctx, tmp_path: Path, how: str, capsys) -> None:
    hub = collated(ctx)
    host = tmp_path / "etc" / "hostname"  # /etc/hostname, in a folder of the test's own
    host.parent.mkdir()
    host.write_text("build-host\n")
    rel = "../" * (len(hub.parts) - 1) + host.as_posix().lstrip("/") if how == "dot-dot" else str(host)
    assert (hub / rel).resolve() == host, "the entry names the real file, with its real size and sha256"
    add_entry(hub, "files", rel, host)
    assert cli("validate", hub) == 1
    assert f"problem: {rel}: leads outside {hub}" in capsys.readouterr().out


def test_an_external_entry_escaping_the_project_is_invalid(ctx, root: Path, capsys) -> None:
    hub = collated(ctx)
    outside = root.parent / "outside.bin"
    outside.write_bytes(b"not the project's\n")
    add_entry(hub, "external", "../outside.bin", outside)
    assert cli("validate", "--require-artifacts", hub) == 1
    assert f"problem: ../outside.bin: leads outside {root}" in capsys.readouterr().out


def test_a_symlink_inside_a_hub_is_invalid(ctx, tmp_path: Path, capsys) -> None:
    hub = collated(ctx)
    log = hub / LOGS["unit"]
    twin = tmp_path / "twin.log"
    shutil.copyfile(log, twin)  # the same bytes: only the link gives it away
    log.unlink()
    log.symlink_to(twin)
    assert cli("validate", hub) == 1
    assert f"problem: {LOGS['unit']}: a symlink inside the hub" in capsys.readouterr().out


def test_a_symlink_a_target_makes_in_the_hub_is_not_hashed_and_the_hub_is_not_green(tmp_path: Path, capsys) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the hub\n")
    link = f"import os; os.symlink({str(secret)!r}, '{{hub}}/stolen.txt')"
    root, plan = real_project(tmp_path, table_for_command("link", link))
    code, hub, manifest = pipeline(root, plan, capsys)
    assert (hub / "stolen.txt").is_symlink() and "stolen.txt" not in {e.path for e in manifest.files}
    assert (code, manifest.overall_verdict) == (1, "RED") and "stolen.txt: a symlink inside the hub" in \
        manifest.overall_reason, manifest.overall_reason


# ----------------------------------------------------------------- 4. the checkout decides, never the hub

def test_a_copied_hub_never_writes_the_ledger_its_run_json_names(ctx, root: Path, tmp_path: Path, capsys) -> None:
    hub = make_hub(ctx)  # finished, not yet collated
    before = {rel: (root / rel).read_bytes() for rel in (PLAN_MD, FIX_PLAN)}
    copy = tmp_path / "mail" / "hub"
    shutil.copytree(hub, copy)
    assert cli("collate", copy) == 2, "outside any checkout: which one it belongs to is for the user to say"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not inside the checkout it was made for" in err[0] and "--project" in err[0], err
    other = make_project(tmp_path / "other", PLAN + "\n# another project: another root commit\n")
    assert cli("collate", "--project", other, copy) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "made for another project" in err[0], err
    assert {rel: (root / rel).read_bytes() for rel in (PLAN_MD, FIX_PLAN)} == before, "run.json's checkout untouched"
    assert row_state(other) == "[P]" and not (copy / HubFiles.MANIFEST).exists()


# ----------------------------------------------------------------- 6. a damaged log is caught

NUL_HEADER = "p = '{hub}/nul.log.partial'; f = open(p, 'r+b'); f.write(bytes(200)); f.close(); print('done')"


def test_a_target_that_overwrites_its_log_header_with_nul_bytes_is_red_and_invalid(tmp_path: Path, capsys) -> None:
    root, plan = real_project(tmp_path, table_for_command("nul", NUL_HEADER))
    code, hub, manifest = pipeline(root, plan, capsys)
    assert (hub / "nul.log").read_bytes()[:200] == bytes(200), "the target did overwrite its header"
    assert (code, manifest.overall_verdict) == (1, "RED")
    assert "nul.log: its bytes differ from what the harness wrote" in manifest.targets[0].reason, manifest.targets
    assert cli("validate", hub) == 1
    assert "problem: nul.log: its bytes differ from what the harness wrote" in capsys.readouterr().out


# ----------------------------------------------------------------- 8. hub files are not private

def test_a_real_run_writes_hub_files_with_the_umask(tmp_path: Path, capsys) -> None:
    root, plan = real_project(tmp_path, table_for_command("ok", "print('ok')"))
    old = os.umask(0o027)
    try:
        code, hub, _ = pipeline(root, plan, capsys)
    finally:
        os.umask(old)
    modes = {p.relative_to(hub).as_posix(): oct(p.stat().st_mode & 0o777) for p in hub.rglob("*") if p.is_file()}
    assert code == 0 and HubFiles.MANIFEST in modes and set(modes.values()) == {"0o640"}, modes


# ----------------------------------------------------------------- 9. validate wherever the hub is; bounded memory

def test_validate_finds_the_artifacts_of_a_hub_kept_outside_its_project(ctx, root: Path, tmp_path: Path,
                                                                         capsys) -> None:
    hub = collated(ctx)
    copy = tmp_path / "kept" / "hub"
    shutil.copytree(hub, copy)
    assert cli("validate", "--require-artifacts", copy) == 1, "outside its project: the artifacts are not found"
    assert "--require-artifacts needs them" in capsys.readouterr().out
    assert cli("validate", "--require-artifacts", "--project", root, copy) == 0
    assert capsys.readouterr().out.strip().endswith("overall GREEN; unsigned)")


PEAK = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, end=''); sys.exit(code)")


@pytest.mark.e2e
def test_validate_of_a_hub_with_a_1_gb_log_stays_under_150_mb(ctx) -> None:
    hub = make_hub(ctx)
    log, gb = hub / LOGS["integration"], 1 << 30
    data = log.read_bytes()
    cut = data.index(b"----- output -----\n") + 19
    with open(log, "wb") as handle:  # sparse: 1 GB of NUL bytes in the output, not one of them a line break
        handle.write(data[:cut])
        handle.truncate(cut + gb)
        handle.seek(cut + gb)
        handle.write(b"\n" + data[cut:])
    digest = hashlib.sha256()
    with open(log, "rb") as handle:
        while block := handle.read(1 << 24):
            digest.update(block)
    path = hub / HubFiles.verdict("integration")  # sealed as the runner would have
    replace(VerdictRecord.load(path), log_sha256=digest.hexdigest(), log_bytes=log.stat().st_size).write(path)
    env = {**os.environ, "PYTHONPATH": str(HOME)}
    subprocess.run([sys.executable, "-m", "harness", "collate", "--no-ledger", str(hub)], env=env, check=True,
                   capture_output=True)
    # A fresh parent: a child's peak RSS counts what it inherited before exec, and this process may be large.
    done = subprocess.run([sys.executable, "-c", PEAK, sys.executable, "-m", "harness", "validate", str(hub)],
                          capture_output=True, text=True, env=env)
    out, peak_kb = done.stdout.rsplit("\n", 1)[0], int(done.stdout.rsplit("\n", 1)[1])
    assert done.returncode == 0 and out.strip().endswith("overall GREEN; unsigned)"), done.stdout + done.stderr
    assert peak_kb < 150 * 1024, f"validate peaked at {peak_kb // 1024} MB for a 1 GB log"

def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for its reaper does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_kill_9_of_run_target_takes_its_running_child_with_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    sleeper = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    root, plan = real_project(tmp_path, table_for_command("sleeper", sleeper, timeout=300))
    hub = create_hub(context(root), targets=("sleeper",), python=sys.executable)
    env = {**os.environ, "EVIDENCE_HUB": str(hub.path), "EVIDENCE_PLAN": str(plan), "EVIDENCE_PROJECT": str(root),
           "PYTHONPATH": str(HOME)}
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run-target", "sleeper"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not (pid_file.is_file() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    child = int(pid_file.read_text())
    try:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(child), "the target's process outlived the run-target that started it"
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)
