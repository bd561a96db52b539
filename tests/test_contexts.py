"""What a user may pass as the context: bytes, files, directories, DataFrames, and what the root is told."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from rlm import RLM
from rlm.repl import reading
from rlm.repl.contexts import MAX_FILE_BYTES, DirectoryContext, TextFile, load_context, value_of
from rlm.repl.sandbox.exchange import LoadEnded, Pipe, payload
from rlm.testing import ScriptedLM


def tree(root: Path) -> None:
    """A small project: text at two depths, a binary, an oversized file, a link, a FIFO, a .git to ignore."""
    (root / "pkg").mkdir()
    (root / "pkg" / "mod.py").write_text("def f():\n    return 1\n")
    (root / "README.md").write_bytes(b"caf\xc3\xa9 and a bad byte \xff\n")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")
    (root / "big.log").write_bytes(b"x" * (MAX_FILE_BYTES + 1))
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "link.py").symlink_to("/etc/hostname")
    os.mkfifo(root / "pipe")


def test_bytes_are_utf8_text_with_replacement_characters() -> None:
    assert load_context(b"caf\xc3\xa9 \xff!") == "café \ufffd!"
    assert load_context(bytearray(b"ok")) == "ok" and load_context(memoryview(b"ok")) == "ok"


def test_unsupported_types_say_what_works() -> None:
    with pytest.raises(TypeError, match=r"unsupported context type int; supported: str, bytes.*DataFrame.*directory"):
        load_context(3)


def test_a_directory_is_its_text_files_by_relative_path_and_says_what_it_skipped(tmp_path: Path) -> None:
    tree(tmp_path)
    loaded = load_context(tmp_path)
    assert isinstance(loaded, DirectoryContext)
    assert value_of(loaded) == {"README.md": "café and a bad byte \ufffd\n", "pkg/mod.py": "def f():\n    return 1\n"}
    skipped = dict(loaded.skipped)
    assert skipped == {
        "big.log": "files over 2 MB", "logo.png": "binary files", "link.py": "symbolic links (not followed)",
        "pipe": "not regular files (FIFOs, sockets, devices)",
        ".git": "directories never read (version control, caches, environments)",
    }
    told = loaded.describe()
    assert "dict of 2 text files" in told and "'pkg/mod.py'" in told
    assert "Not in `context`:" in told and "1 binary files (logo.png)" in told and "big.log" in told


def test_a_directory_with_no_text_files_is_an_error_saying_why(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"\0\1\2")
    with pytest.raises(FileNotFoundError, match=r"no text files in the directory .*1 binary files \(a.bin\)"):
        load_context(tmp_path)


def test_a_file_is_looked_at_not_read_and_a_replaced_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "doc.txt"
    path.write_bytes("日本語 text\n".encode() * 10_000)
    loaded = load_context(path)
    assert isinstance(loaded, TextFile) and loaded.size == path.stat().st_size
    assert loaded.preview.startswith("日本語 text") and len(loaded.preview) == 500
    assert f"{loaded.size:,} bytes" in loaded.describe()
    assert value_of(loaded) == path.read_text()
    (tmp_path / "other.txt").write_text("another file under the same name")
    os.replace(tmp_path / "other.txt", path)
    with pytest.raises(FileNotFoundError, match="was replaced"):
        value_of(loaded)


def test_a_fifo_or_a_missing_path_fails_at_once_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    failed: list[BaseException] = []

    def attempt() -> None:
        try:
            load_context(tmp_path / "pipe")
        except FileNotFoundError as exc:
            failed.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(5)
    assert failed and "not a regular file" in str(failed[0])
    with pytest.raises(FileNotFoundError, match="not a readable file"):
        load_context(tmp_path / "missing.txt")


def _through_a_pipe(loaded: object) -> object:
    """What the kernel reads from the pipe the host fills, the host writing on a thread as in a load."""
    sent = payload(loaded)  # type: ignore[arg-type]
    assert sent.write is not None
    pipe = Pipe()
    writer = threading.Thread(target=pipe.fill, args=(sent.write,))
    writer.start()
    try:
        return reading.read_value(pipe.read_fd, sent.kind)
    finally:
        writer.join(10)
        os.close(pipe.read_fd)


@pytest.mark.parametrize("value", ["ascii only\n" * 100, "ünïcode ☃ 😀 and a lone \ud800 surrogate", "",
                                   "x" * (3 << 20), "☃" * (3 << 20) + "a", ("a", {2019: ["x"]}), b"\xff bytes",
                                   {"big": b"\0" * (5 << 20)}])
def test_what_the_host_pipes_the_kernel_reads_back_equal(value: object) -> None:
    loaded = load_context(value)
    assert _through_a_pipe(loaded) == value_of(loaded)


def test_a_file_copied_for_a_kernel_without_its_descriptor_reads_back_decoded(tmp_path: Path) -> None:
    source = tmp_path / "doc.txt"
    source.write_bytes(b"caf\xc3\xa9 \xff\n" * 300_000)  # a multi-byte character split across pipe reads
    loaded = load_context(source)
    assert payload(loaded).kind == "file" and payload(loaded).source is not None
    assert _through_a_pipe(loaded) == "café \ufffd\n" * 300_000


def test_a_writer_whose_reader_is_gone_or_stalled_gives_up() -> None:
    """The host's writer never blocks for good: a closed pipe fails it, an ended load stops it."""
    sent = payload(load_context("x" * (8 << 20)))
    assert sent.write is not None
    pipe = Pipe()
    os.close(pipe.read_fd)
    with pytest.raises(BrokenPipeError):
        pipe.fill(sent.write)
    stalled = Pipe()
    failed: list[BaseException] = []

    def fill() -> None:
        try:
            stalled.fill(sent.write)  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            failed.append(exc)

    writer = threading.Thread(target=fill)
    writer.start()
    stalled.ended.set()
    writer.join(5)
    os.close(stalled.read_fd)
    assert not writer.is_alive() and failed and isinstance(failed[0], LoadEnded)


def test_a_context_kind_that_must_be_piped_is_refused_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("x")
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(ValueError, match="comes down a pipe"):
            reading.read_value(fd, "ascii")
    finally:
        os.close(fd)


def test_the_local_repl_gets_files_and_directories_and_the_root_is_told_what_was_skipped(tmp_path: Path) -> None:
    tree(tmp_path)
    program = ("```repl\nprint(type(context).__name__, "
               "sorted(context) if isinstance(context, dict) else len(context))\n```")
    with ScriptedLM(root=[program, "FINAL(ok)", program, "FINAL(ok)"]) as lm, \
            RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox="local") as rlm:
        from_dir = rlm.completion(tmp_path, "q")
        from_file = rlm.completion(tmp_path / "README.md", "q")
        first_prompts = [r.messages[1]["content"] for r in lm.requests if len(r.messages) == 2]
    assert from_dir.steps[0].outputs[0].stdout == "dict ['README.md', 'pkg/mod.py']\n"
    assert from_file.steps[0].outputs[0].stdout == "str 22\n"
    assert "Not in `context`:" in first_prompts[0] and "logo.png" in first_prompts[0]
    assert "the text of the file 'README.md'" in first_prompts[1]


def test_a_dataframe_arrives_as_a_dataframe_in_the_local_repl() -> None:
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame({"city": ["Oslo", "Lima"], "people": [709_000, 10_000_000]})
    program = "```repl\nprint(type(context).__name__, int(context['people'].sum()))\n```"
    with ScriptedLM(root=[program, "FINAL(ok)"]) as lm, \
            RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox="local") as rlm:
        result = rlm.completion(frame, "q")
        told = lm.requests[0].messages[1]["content"]
    assert result.steps[0].outputs[0].stdout == "DataFrame 10709000\n"
    assert "pandas DataFrame of 2 rows and 2 columns ('city': " in told and "'people': int64" in told
    assert "Oslo" in told
