"""The sha256 of a file: how the backend names a data file (fixture sidecar, TRAIN_RECORD, reconstruction).

Why one helper: the digest a sidecar records, the one training reports and the one inference
stores must be computed the same way to be compared. ``hashlib.file_digest`` streams the
file, so a large scan is never read into memory at once.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of the file's bytes."""
    with Path(path).open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
