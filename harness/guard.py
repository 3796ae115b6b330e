"""The production-code guard's watcher: every file written under the plan's production paths while nox runs.

git's sampled view misses a file edited and restored within a target; inotify (watchdog) sees each write."""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from pathlib import Path

from harness import UserError

try:
    from watchdog.observers import Observer
except ImportError:  # the driver runs in the tools venv (harness/tools.py), which has it
    Observer = None

WRITES = {"created", "modified", "attrib", "deleted", "moved"}  # not opened/closed: reading is no write
FLUSH_S = 10.0  # how long the watch's end waits for the events still queued


def require() -> None:
    """Refuse to start a run the guard cannot watch (before any hub is made)."""
    if Observer is None:
        raise UserError("the production-code guard needs watchdog, which the harness's tools venv holds: "
                        "run the driver through make or nox (or `pip install -c constraints.txt watchdog`)")


class _Folder:
    """The observer's handler for one watched folder: its events, and its own flush marker, go to the watch."""

    def __init__(self, watch: "ProductionWatch", path: Path) -> None:
        self.watch, self.path = watch, str(path)

    def dispatch(self, event) -> None:
        self.watch.saw(event, event.is_directory and event.event_type == "attrib" and event.src_path == self.path)


class ProductionWatch(logging.Handler):
    """`with ProductionWatch(project, production) as w:` ... `w.written`; a logging.Handler, for watchdog's warnings."""

    def __init__(self, project: Path, production: tuple[str, ...]) -> None:
        super().__init__(logging.WARNING)
        self.project = project.resolve()
        self.roots = tuple(self.project / p for p in production)
        self.seen, self.pending, self.lost = set[str](), set[str](), list[str]()  # pending: folders not flushed yet
        self.flushed, self.stopping, self.written = threading.Event(), False, ()
        self.folders: dict[Path, bool] = {}  # folder -> recursive; a missing path: its nearest folder, to see it appear
        for root in self.roots:
            folder = root if root.is_dir() else next(p for p in root.parents if p.is_dir())
            self.folders[folder] = self.folders.get(folder, False) or folder == root

    def __enter__(self) -> "ProductionWatch":
        require()
        self.observer = Observer()
        logging.getLogger("watchdog").addHandler(self)
        try:
            for folder, recursive in self.folders.items():
                self.observer.schedule(_Folder(self, folder), str(folder), recursive=recursive)
            self.observer.start()
        except OSError as exc:
            logging.getLogger("watchdog").removeHandler(self)
            raise UserError(f"cannot watch {', '.join(map(str, self.folders))} for writes: {exc}") from exc
        return self

    def emit(self, record: logging.LogRecord) -> None:
        """A warning of watchdog while watching (queue overflow, a watch lost): events may be lost."""
        self.lost += [] if self.stopping else [record.getMessage()]

    def saw(self, event, marker: bool) -> None:
        """Every event of every watched folder (in the observer's thread); `marker`: that folder's flush marker."""
        if marker and event.src_path in self.pending:
            self.pending.discard(event.src_path)
            if not self.pending:
                self.flushed.set()
        folder_echo = event.is_directory and event.event_type in ("modified", "attrib")  # its files tell more
        for path in (Path(p) for p in (event.src_path, getattr(event, "dest_path", "")) if p):
            if event.event_type in WRITES and not folder_echo and any(path.is_relative_to(r) for r in self.roots):
                self.seen.add(path.relative_to(self.project).as_posix() + ("/" if event.is_directory else ""))

    def _flush(self) -> None:
        """Wait until every event queued is dispatched: a marker (each folder's times, set as they are) follows them."""
        self.pending = {str(folder) for folder in self.folders}
        try:
            for folder in self.folders:
                st = folder.stat()
                os.utime(folder, ns=(st.st_atime_ns, st.st_mtime_ns))
        except OSError:  # not ours to touch: wait out watchdog's pairing of moves (0.5 s) instead
            return self.flushed.wait(1.0)  # no marker will set it: a plain wait
        if not self.flushed.wait(FLUSH_S):
            self.lost.append(f"the watcher fell behind ({len(self.pending)} folder(s) not flushed in {FLUSH_S:g} s)")

    def __exit__(self, *exc: object) -> None:
        """Stop watching: `written` is the files written, git-ignored ones left out (and a note if events were lost)."""
        try:
            self._flush()
        finally:
            self.stopping = True
            self.observer.stop()
            self.observer.join(timeout=10)
            logging.getLogger("watchdog").removeHandler(self)
        note = [f"(writes not all seen: {self.lost[0]})"] if self.lost else []
        self.written = tuple(sorted(self.seen - (ignored(self.project, self.seen) if self.seen else set())) + note)


def ignored(project: Path, paths: set[str]) -> set[str]:
    """The paths git ignores (one `git check-ignore --stdin`; a tracked file is never ignored); none without git."""
    try:
        done = subprocess.run(["git", "-C", str(project), "check-ignore", "--stdin", "-z"], input="\0".join(paths),
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return set()
    return set(done.stdout.split("\0")) - {""} if done.returncode in (0, 1) else set()
