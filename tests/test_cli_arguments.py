"""Every command of the ``rlm`` script answers a bad argument with one line saying what to do, and exit 2.

Each command, and each benchmark ``rlm bench`` lists, is run as a real subprocess of the
installed console script (or ``python -m rlm``) with a missing file, a directory, an empty
file and a binary file wherever it takes a path, and with a bad number or name where it
takes one. None of them may start working first: a benchmark that ran before refusing
would hit the subprocess timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlm import bench
from rlm.cli import COMMANDS

SCRIPT = Path(sys.executable).parent / "rlm"
KINDS = ("missing", "directory", "empty", "binary")
FILE_KINDS = ("empty", "binary")  # where a directory is wanted
# (argv with {} for the path, the kinds it must refuse). An output file may be missing (it is made) and is replaced
# when it exists; an output directory may be missing too. Arguments that are not paths get bad values.
CASES: list[tuple[str, tuple[str, ...]]] = [
    ("view {}", KINDS),
    ("view rows.jsonl -o {}", ("directory", "under_a_file")),
    ("ask -c {} -q q", KINDS),
    ("ask -c notes.txt -q q --log-dir {}", FILE_KINDS),
    ("map -i {}", KINDS),
    ("map --status {}", KINDS),
    ("map -i rows.jsonl -k {}", ("directory", "binary")),
    ("map -i rows.jsonl -o {}", ("directory", "under_a_file")),
    ("serve-fake {}", KINDS),
    ("serve-fake --port 70000", ()),
    ("serve-fake --admit 0", ()),
    ("bench throughput --json {}", ("directory", "under_a_file")),
    ("bench throughput --profile {}", FILE_KINDS),
    ("bench throughput --peers-venv {}", FILE_KINDS),
    ("bench throughput --transports auto,fastest", ()),
    ("bench throughput --tail-sigma 1,x", ()),
    ("bench throughput --repeats 0", ()),
    ("bench sandbox {}", KINDS),
    ("bench sandbox --mode bogus", ()),
    ("bench scale --json {}", ("directory", "under_a_file")),
    ("bench scale --chunk-mb 100,lots", ()),
    ("bench scale --kinds prose,poetry", ()),
    ("bench startup {}", KINDS),
    ("bench startup --repeats 0", ()),
    ("bench sandbox-attacks {}", KINDS),
    ("bench sandbox-attacks --modes bogus", ()),
    ("bench hedge-sim {}", KINDS),
    ("bench hedge-sim --percentiles 0.5,2", ()),
    ("bench hedge-sim --copies x", ()),
    *((f"bench {task} --out {{}}", FILE_KINDS) for task in ("sniah", "oolong", "pairs", "codeqa")),
    ("bench sniah --sizes 8k,big", ()),
    ("bench codeqa --source {}", KINDS),
    ("bench prompt --trajectories {}", ("missing", "empty", "binary")),
    ("bench documents --sandboxes kernel,docker", ()),
    ("serve -m gpt-5 --config {}", KINDS),
    ("serve -m gpt-5 --root {}", ("missing", "empty", "binary")),
    ("serve -m gpt-5 --trace-dir {}", FILE_KINDS),
    ("serve -m gpt-5 --port 70000", ()),
    ("serve -m gpt-5 --max-runs 0", ()),
    ("mcp -m gpt-5 --config {}", KINDS),
    ("mcp -m gpt-5 --root {}", ("missing", "empty", "binary")),
    ("mcp -m gpt-5 --http --port -1", ()),
    ("export {} -o out.jsonl", KINDS),
    ("export rows.jsonl -o {}", ("directory", "under_a_file")),
]


def runs() -> list[tuple[str, str]]:
    return [(argv, kind) for argv, kinds in CASES for kind in kinds or ("",)]


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a path of each kind, and good files for the arguments a case does not test."""
    root = tmp_path_factory.mktemp("cli")
    (root / "directory").mkdir()
    (root / "directory" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")  # no text file in it
    (root / "empty").write_bytes(b"")
    (root / "binary").write_bytes(b"\x7fELF\x02\x01\x01\0\0\0\0\0\xff\xfe")
    (root / "rows.jsonl").write_text('{"prompt": "hi"}\n')
    (root / "notes.txt").write_text("Some notes.\n")
    return root


def rlm(place: Path, argv: str, *, module: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    command = [sys.executable, "-m", "rlm"] if module else [str(SCRIPT)]
    return subprocess.run([*command, *argv.split()], cwd=place, capture_output=True, text=True, timeout=60,
                          env=env, check=False)


def path_of(place: Path, kind: str) -> str:
    return {"missing": "missing.txt", "under_a_file": "binary/out"}.get(kind, kind)


def command_of(argv: str) -> str:
    return " ".join(argv.split()[:2]) if argv.startswith("bench ") else argv.split()[0]


def test_every_command_and_benchmark_has_its_cases() -> None:
    """A new command, or a new benchmark, joins the table above: its bad arguments are tested too."""
    covered = {command_of(argv) for argv, _ in CASES}
    listed = {name for name in COMMANDS if name != "bench"} | {f"bench {name}" for name in bench.BENCHES}
    assert listed <= covered, f"no bad-argument case for: {sorted(listed - covered)}"


@pytest.mark.parametrize(("argv", "kind"), runs(), ids=[f"{a} [{k}]" if k else a for a, k in runs()])
def test_a_bad_argument_is_one_line_saying_what_to_do_and_exit_2(place: Path, argv: str, kind: str) -> None:
    done = rlm(place, argv.format(path_of(place, kind)))
    said = done.stderr.strip()
    assert done.returncode == 2, f"exit {done.returncode}: {done.stderr[-2000:]}"
    assert "Traceback" not in said and len(said.splitlines()) == 1, said
    assert said.startswith(f"rlm {command_of(argv)}: "), said  # named as typed
    assert any(hint in said for hint in (" pass ", "--help", "choose")), said  # what to do instead
    if kind:
        assert path_of(place, kind) in said  # and which path it was
    assert done.stdout == ""


def test_python_dash_m_rlm_is_the_same_command(place: Path) -> None:
    done = rlm(place, "view directory", module=True)
    assert done.returncode == 2 and done.stderr.startswith("rlm view: argument log: directory is a directory; pass")


def test_good_paths_of_the_kinds_refused_elsewhere_still_work(tmp_path: Path) -> None:
    """An output may be missing or replaced, a checkpoint may start as an empty file, a context may be a directory."""
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("The answer is in here.\n")
    (tmp_path / "rows.jsonl").write_text('{"prompt": "hi"}\n')
    (tmp_path / "fresh.sqlite").write_bytes(b"")
    (tmp_path / "old.jsonl").write_bytes(b"\0old")
    asked = rlm(tmp_path, "ask -c texts -q q --sandbox local --log-dir new/logs")
    assert asked.returncode == 0, asked.stderr
    log = next((tmp_path / "new" / "logs").glob("*.jsonl"))
    mapped = rlm(tmp_path, "map -i rows.jsonl -k fresh.sqlite -o old.jsonl")
    assert mapped.returncode == 0, mapped.stderr
    assert (tmp_path / "old.jsonl").read_text().startswith('{"index": 0, "answer": ')
    assert rlm(tmp_path, "map --status fresh.sqlite").returncode == 0
    (tmp_path / "pages").mkdir()
    viewed = rlm(tmp_path, f"view {log} -o pages/run.html")
    missing_dir = rlm(tmp_path, f"view {log} -o nowhere/run.html")
    assert missing_dir.returncode == 2 and "no such directory nowhere; pass" in missing_dir.stderr
    assert viewed.returncode == 0 and (tmp_path / "pages" / "run.html").is_file(), viewed.stderr


def test_empty_stdin_and_a_bad_budget_are_refused_before_any_model_call(place: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    done = subprocess.run([str(SCRIPT), "ask", "-c", "-", "-q", "q"], input="  \n", cwd=place, capture_output=True,
                          text=True, timeout=60, env=env, check=False)
    assert done.returncode == 2 and done.stderr == "rlm ask: stdin is empty; pass a text file or document (PDF, " \
        "Word, ...), a directory of them, or - (stdin)\n"
    budget = rlm(place, "ask -c notes.txt -q q --budget-usd -1")
    assert budget.returncode == 2 and "must be a positive number" in budget.stderr
    assert len(budget.stderr.strip().splitlines()) == 1


FIFO_CASES = ["view {}", "ask -c {} -q q", "map -i {}", "map --status {}", "map -i rows.jsonl -k {}"]


@pytest.mark.parametrize("argv", FIFO_CASES)
def test_a_fifo_is_refused_without_being_opened(place: Path, argv: str) -> None:
    """Opening a FIFO to look at it would wait for a writer that never comes: the subprocess timeout would hit."""
    if not (place / "fifo").exists():
        os.mkfifo(place / "fifo")
    done = rlm(place, argv.format("fifo"))
    assert done.returncode == 2 and "fifo is not a regular file (a FIFO, a socket or a device); pass" in done.stderr
