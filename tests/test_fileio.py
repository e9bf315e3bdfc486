"""Atomic writes: nothing half-written is ever in place, and what is written respects the user's umask."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from emoedge.fileio import atomic_torch_save, atomic_write, atomic_write_text


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        text = atomic_write_text(tmp_path / "a.txt", "hello")
        tensor = atomic_torch_save({"x": torch.zeros(2)}, tmp_path / "b.pt")
    finally:
        os.umask(previous)
    for path in (text, tensor):
        assert stat.S_IMODE(path.stat().st_mode) == mode, (path, oct(path.stat().st_mode))


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    path = atomic_write_text(tmp_path / "c.txt", "old")

    def fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_write(path, fail)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]
