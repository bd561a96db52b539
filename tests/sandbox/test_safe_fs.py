"""The host's file operations against what a hostile kernel leaves behind: links, FIFOs, deep trees."""

from __future__ import annotations

import os
import stat

import pytest

from rlm.repl.sandbox import safe_fs


def test_remove_tree_deletes_a_deep_tree_without_following_links(tmp_path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    root = tmp_path / "tree"
    root.mkdir()
    deep = os.open(str(root), os.O_RDONLY)
    try:
        for i in range(3000):  # 3,000 levels: 6,000 characters of path, past PATH_MAX and the recursion limit
            os.mkdir("d", dir_fd=deep)
            if i % 500 == 0:
                os.close(os.open("f", os.O_CREAT | os.O_WRONLY, dir_fd=deep))
            inner = os.open("d", os.O_RDONLY, dir_fd=deep)
            os.close(deep)
            deep = inner
        os.symlink(str(outside), "link-to-outside", dir_fd=deep)
        os.symlink(str(outside / "keep.txt"), "link-to-file", dir_fd=deep)
        os.mkfifo("fifo", dir_fd=deep)
    finally:
        os.close(deep)
    assert safe_fs.remove_tree(str(root)) is True
    assert not root.exists()
    assert (outside / "keep.txt").read_text() == "keep"


def test_remove_tree_of_a_link_removes_only_the_link(tmp_path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (target / "f").write_text("x")
    os.symlink(target, tmp_path / "link")
    assert safe_fs.remove_tree(str(tmp_path / "link")) is True
    assert (target / "f").read_text() == "x"


def test_write_new_refuses_a_planted_link_or_fifo(tmp_path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("original")
    os.symlink(victim, tmp_path / "planted-link")
    os.mkfifo(tmp_path / "planted-fifo")
    fd = safe_fs.open_dir(str(tmp_path))
    try:
        for name in ("planted-link", "planted-fifo"):
            with pytest.raises(FileExistsError):
                safe_fs.write_new(fd, name, b"overwritten", gid=None, mode=0o400)
        safe_fs.write_new(fd, "fresh", b"data", gid=None, mode=0o440)
    finally:
        os.close(fd)
    assert victim.read_text() == "original"
    assert stat.S_IMODE(os.stat(tmp_path / "fresh").st_mode) == 0o440


def test_read_tail_never_blocks_on_a_fifo_and_ignores_links(tmp_path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "log").write_bytes(b"a" * 5000 + b"END")
    os.symlink(tmp_path / "log", tmp_path / "link")
    assert safe_fs.read_tail(str(tmp_path / "fifo"), 100) == b""
    assert safe_fs.read_tail(str(tmp_path / "link"), 100) == b""
    assert safe_fs.read_tail(str(tmp_path / "log"), 10) == b"aaaaaaaEND"


def test_open_dir_refuses_a_link_to_a_directory(tmp_path) -> None:
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    with pytest.raises(OSError):
        safe_fs.open_dir(str(tmp_path / "link"))
