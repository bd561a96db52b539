"""Contexts in the kernel sandbox: a file by descriptor, a directory, bytes, a DataFrame; what a descriptor allows."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from sandbox_modes import MODES, sandbox_config

from rlm.bench.sandbox import EchoHost
from rlm.repl.kernel_repl import KernelREPL
from rlm.repl.sandbox.config import Isolation
from rlm.repl.sandbox.pool import KernelPool

SHOW = "import json\nprint(json.dumps([type({0}).__name__, {0} if isinstance({0}, (str, dict)) else repr({0})]))"


async def in_kernel(mode: str, context: Any, puts: dict[str, Any], program: str, **config: Any) -> tuple[str, bool]:
    """Root code's output after ``context`` and ``puts`` went in; and whether files went as descriptors."""
    repl = KernelREPL(KernelPool(sandbox_config(mode, warm_kernels=0, **config)))
    try:
        await repl.start(context, EchoHost())
        for name, value in puts.items():
            await repl.put(name, value)
        result = await repl.execute(program)
        assert result.error is None, result.error
        return result.stdout, (await repl.kernel()).isolation.takes_descriptors
    finally:
        await repl.close()
        await repl.pool.aclose()


@pytest.mark.parametrize("mode", MODES)
def test_files_directories_and_bytes_arrive_as_in_the_local_repl(mode: str, tmp_path: Path) -> None:
    doc = tmp_path / "doc.txt"
    doc.write_bytes("naïve 日本語 \xff\n".encode("utf-8", "surrogateescape") * 50_000 + b"\xff\n")
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "a.py").write_text("x = 1\n")
    (project / "data.bin").write_bytes(b"\0\1")
    program = "\n".join(SHOW.format(name) for name in ("context", "context_2", "context_3"))
    out, by_descriptor = asyncio.run(in_kernel(mode, doc, {"context_2": project, "context_3": b"caf\xc3\xa9 \xff"},
                                               program))
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0] == ["str", doc.read_bytes().decode("utf-8", "replace")]
    assert lines[1] == ["dict", {"src/a.py": "x = 1\n"}]
    assert lines[2] == ["str", "café \ufffd"]
    assert by_descriptor  # this machine has Landlock and a uid per kernel: the file is never copied


def test_a_dataframe_arrives_as_a_dataframe_where_the_kernel_has_pandas() -> None:
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    where = os.path.dirname(os.path.dirname(pandas.__file__))
    program = "print(type(context).__name__, context.shape, int(context['a'].sum()), list(context['b']))"
    out, _ = asyncio.run(in_kernel("auto", frame, {}, program, extra_env={"PYTHONPATH": where}))
    assert out == "DataFrame (3, 2) 6 ['x', 'y', 'z']\n"


class OnlyHere:
    """A class the kernel cannot import (this test module is not on its path), as pandas where it is missing."""


def test_a_value_whose_module_the_kernel_lacks_fails_before_any_model_call_saying_what_to_do() -> None:
    with pytest.raises(TypeError, match=r"could not load the context: ModuleNotFoundError.*install it there"):
        asyncio.run(in_kernel("auto", [OnlyHere()], {}, "pass"))


#: Root code that takes a descriptor the host offers (as a thread it left running could, during a
#: session's later put) and tries everything a read-only descriptor might still allow.
ABUSE = """\
import json, os
fd = __import__('_rlm_in_kernel')._runtime.bridge.take_fd({offer!r})
tried = {{}}
for how, attempt in [
    ("reopen for writing", lambda: os.open(f"/proc/self/fd/{{fd}}", os.O_WRONLY | os.O_APPEND)),
    ("write", lambda: os.write(fd, b"owned")),
    ("fchmod", lambda: os.fchmod(fd, 0o777)),
    ("ftruncate", lambda: os.ftruncate(fd, 0)),
]:
    try:
        tried[how] = f"done: {{attempt()}}"
    except OSError as exc:
        tried[how] = type(exc).__name__
print(json.dumps([os.pread(fd, 5, 0).decode(), tried]))
"""


@pytest.mark.parametrize("mode", [m for m in MODES if m != "none"])  # none: the kernel has the host's rights anyway
def test_a_descriptor_the_kernel_takes_reads_the_file_and_changes_nothing(mode: str, tmp_path: Path) -> None:
    doc = tmp_path / "doc.txt"
    doc.write_text("secret text\n")
    doc.chmod(0o644)

    async def main() -> tuple[list[Any], bool]:
        repl = KernelREPL(KernelPool(sandbox_config(mode, warm_kernels=0)))
        try:
            await repl.start("ctx", EchoHost())
            kernel = await repl.kernel()
            offer = kernel.bridge.offer_fd(os.open(doc, os.O_RDONLY | os.O_CLOEXEC))
            result = await repl.execute(ABUSE.format(offer=offer))
            assert result.error is None, result.error
            return json.loads(result.stdout), kernel.isolation.takes_descriptors
        finally:
            await repl.close()
            await repl.pool.aclose()

    (head, tried), passes = asyncio.run(main())
    assert head == "secre"
    assert doc.read_text() == "secret text\n" and stat.S_IMODE(doc.stat().st_mode) == 0o644
    assert passes  # so the host would hand this kernel such descriptors
    assert not any(v.startswith("done") for v in tried.values()), tried


def test_only_a_kernel_with_its_own_uid_under_landlock_or_with_the_hosts_rights_takes_descriptors() -> None:
    def level(mode: str, separate_user: bool, landlock: int) -> Isolation:
        return Isolation(mode, separate_user, mode == "bwrap", True, mode == "bwrap", True, None, landlock)

    assert level("none", False, 0).takes_descriptors
    assert level("bwrap", True, 7).takes_descriptors and level("uid", True, 1).takes_descriptors
    # the host's own uid (a user's bwrap) could fchmod the file; no Landlock, reopen it for writing: a copy
    assert not level("bwrap", False, 7).takes_descriptors and not level("uid", True, 0).takes_descriptors
