"""Atomic writes: nothing half-written is ever in place, and what is written respects the user's umask."""

from __future__ import annotations

import contextlib
import os
import re
import stat
from pathlib import Path

import pytest
import torch

from emoedge.errors import EmoedgeError
from emoedge.fileio import (
    atomic_torch_save,
    atomic_write,
    atomic_write_text,
    keep_outputs,
    output_file,
    output_folder,
    remove_stale_temps,
    removed_on_failure,
    safe_torch_load,
)


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


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda d: (d / "blocker").write_text("x") and d / "blocker" / "sub" / "out.onnx", "blocker is a file"),
        (lambda d: d, "is a folder; expected a file name"),
        (lambda d: Path("/proc/emoedge-test/out.onnx"), "cannot write there"),
    ],
)
def test_an_unusable_output_file_is_one_line(tmp_path, make, needle):
    path = make(tmp_path)
    with pytest.raises(EmoedgeError, match=rf"^report {re.escape(str(path))}: .*{needle}") as caught:
        output_file(path, "report")
    assert "\n" not in str(caught.value)
    with pytest.raises(EmoedgeError):
        atomic_write_text(path, "x")  # every atomic writer checks the same way


def test_output_folders_are_made_or_refused_in_one_line(tmp_path):
    assert output_folder(tmp_path / "a" / "b").is_dir()
    assert list((tmp_path / "a" / "b").iterdir()) == []  # the write probe leaves nothing behind
    (tmp_path / "file").write_text("x")
    with pytest.raises(EmoedgeError, match=r"run folder .*/file/run: cannot write there \(.*/file is a file"):
        output_folder(tmp_path / "file" / "run", "run folder")


def test_stale_temps_are_removed_and_finished_files_kept(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"done")
    (tmp_path / ".last.pt.1a2b3c4d.tmp").write_bytes(b"")  # what a writer killed mid-way leaves
    (tmp_path / ".hidden").write_text("not ours")
    assert [p.name for p in remove_stale_temps(tmp_path)] == [".last.pt.1a2b3c4d.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden", "last.pt"]


def test_torch_load_names_what_the_file_is(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"x": Payload()}, evil)
    (tmp_path / "text.pt").write_text("hello")
    (tmp_path / "random.pt").write_bytes(bytes(range(7, 250)) * 8)
    good = tmp_path / "good.pt"
    torch.save({"w": torch.ones(3)}, good)
    (tmp_path / "half.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    expected = {
        "evil.pt": "refused to load, it contains pickled Python objects",
        "text.pt": "not a torch file",
        "random.pt": "not a torch file",
        "half.pt": "truncated or corrupt torch file",
    }
    for name, needle in expected.items():
        with pytest.raises(EmoedgeError, match=rf"^checkpoint {re.escape(str(tmp_path / name))}: {needle}"):
            safe_torch_load(tmp_path / name)
    assert torch.equal(safe_torch_load(good)["w"], torch.ones(3))


class Payload:
    def __reduce__(self):
        return (print, ("executed",))


def test_a_failed_block_removes_what_it_created_and_nothing_else(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "kept.txt").write_text("there before")
    with pytest.raises(EmoedgeError), removed_on_failure():
        output_folder(tmp_path / "new" / "deep" / "report")
        atomic_write_text(tmp_path / "old" / "new.txt", "written, then the command failed")
        atomic_write_text(tmp_path / "old" / "kept.txt", "overwritten: it existed, so it stays")
        raise EmoedgeError("bad input found halfway")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["kept.txt", "old"]


@pytest.mark.parametrize("ending", ["success", "kept", "interrupt"])
def test_outputs_stay_after_success_after_keep_outputs_and_after_an_interrupt(tmp_path, ending):
    def work() -> None:
        output_file(tmp_path / "run" / "last.pt")
        if ending == "kept":
            keep_outputs()  # a checkpoint to resume from
            output_folder(tmp_path / "added")  # a stream added to a running service: part of its record too
            raise EmoedgeError("a later epoch failed")
        if ending == "interrupt":
            raise KeyboardInterrupt

    with contextlib.suppress(EmoedgeError, KeyboardInterrupt), removed_on_failure():
        work()
    assert (tmp_path / "run").is_dir() and (tmp_path / "added").is_dir() == (ending == "kept")


def test_nothing_is_recorded_outside_a_block(tmp_path):
    output_folder(tmp_path / "free")
    with pytest.raises(EmoedgeError), removed_on_failure():
        raise EmoedgeError("fails")
    assert (tmp_path / "free").is_dir()
