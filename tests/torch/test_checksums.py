"""sha256_file streams a file to the same digest as hashing its bytes at once."""

from __future__ import annotations

import hashlib

import pytest

from ptycho.checksums import sha256_file


@pytest.mark.parametrize("size", [0, 1, 3 << 20])
def test_sha256_file_equals_the_digest_of_the_bytes(tmp_path, size):
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert sha256_file(str(path)) == sha256_file(path), "str and Path name the same file"
