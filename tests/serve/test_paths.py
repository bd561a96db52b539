"""Document paths stay under the allowed roots: no '..', no link out, no swap after the check."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from rlm.repl.contexts import DirectoryContext, TextFile
from rlm.serve.config import ModelRoute, ServeConfig
from rlm.serve.errors import RequestError
from rlm.serve.paths import confine
from rlm.serve.runs import Service
from rlm.testing import ScriptedLM


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """An allowed root with documents, and a secret outside it."""
    root = tmp_path / "docs"
    (root / "reports").mkdir(parents=True)
    (root / "reports" / "q3.txt").write_text("Q3 revenue rose 12 percent.")
    (root / "notes.md").write_text("# Notes\nnothing secret")
    outside = tmp_path / "secret.txt"
    outside.write_text("TOP SECRET")
    return root, outside


def refused(requested: str, roots: tuple[str, ...], status: int = 400, max_bytes: int = 10**6) -> RequestError:
    with pytest.raises(RequestError) as caught:
        confine(requested, roots, max_bytes)
    assert caught.value.status == status, caught.value.message
    return caught.value


def test_a_file_and_a_directory_under_the_root_open(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    roots = (str(root),)
    found = confine("reports/q3.txt", roots, 10**6)
    assert (found.name, found.is_dir, found.size) == ("q3.txt", False, 27)
    assert Path(found.path).read_text() == "Q3 revenue rose 12 percent."
    found.close()
    absolute = confine(str(root / "reports"), roots, 10**6)
    assert absolute.is_dir and absolute.name == "reports" and absolute.size == 27
    absolute.close()


def test_escapes_are_refused(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    roots = (str(root),)
    (root / "link-out.txt").symlink_to(outside)
    (root / "dir-out").symlink_to(outside.parent)
    os.mkfifo(root / "pipe")
    assert "'..'" in refused("../secret.txt", roots).message
    assert "'..'" in refused("reports/../../secret.txt", roots).message
    assert "outside" in refused(str(outside), roots).message
    assert "link" in refused("link-out.txt", roots).message
    assert "link" in refused("dir-out/secret.txt", roots).message
    assert "neither" in refused("pipe", roots).message
    assert refused("reports/q3.txt/x", roots).status == 400
    refused("missing.txt", roots, 404)
    refused("reports/q3.txt", (), 400)
    refused("", roots)
    refused("a\x00b", roots)
    assert refused("reports/q3.txt", roots, 413, max_bytes=10).code == "context_too_large"
    assert refused("reports", roots, 413, max_bytes=10).code == "context_too_large"


def test_a_root_that_is_a_prefix_of_another_directory_does_not_admit_it(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs-private").mkdir()
    (tmp_path / "docs-private" / "x.txt").write_text("private")
    assert "outside" in refused(str(tmp_path / "docs-private" / "x.txt"), (str(tmp_path / "docs"),)).message


def test_the_loaded_context_is_the_checked_file_and_named_for_it(tree: tuple[Path, Path], tmp_path: Path) -> None:
    root, outside = tree
    with ScriptedLM() as upstream:
        service = Service(ServeConfig(models=(ModelRoute("rlm/r", "r", "s"),), base_url=upstream.base_url,
                                      sandbox="local", allow_local=True, cache=False, roots=(str(root),),
                                      trace_dir=None))
        found = confine("reports/q3.txt", (str(root),), 10**6)
        loaded = service.load(found)
        assert isinstance(loaded, TextFile) and loaded.read() == "Q3 revenue rose 12 percent."
        assert "'q3.txt'" in loaded.describe()
        found.close()
        directory = service.load(confine("reports", (str(root),), 10**6))
        assert isinstance(directory, DirectoryContext) and directory.files == {"q3.txt": "Q3 revenue rose 12 percent."}
        assert "'reports'" in directory.describe()
        # A file swapped for another (here: a link out) after the check is not read.
        swapped = confine("notes.md", (str(root),), 10**6)
        (root / "notes.md").unlink()
        (root / "notes.md").symlink_to(outside)
        with pytest.raises(RequestError) as caught:
            service.load(swapped)
        assert caught.value.status == 409
        swapped.close()


def test_the_endpoint_answers_over_a_confined_document_and_refuses_an_escape(start, tree: tuple[Path, Path]) -> None:
    root, outside = tree
    (root / "link-out.txt").symlink_to(outside)
    with ScriptedLM(root=lambda r: "FINAL(read it)") as upstream:
        running = start(upstream, roots=(str(root),))
        ok = httpx.post(f"{running.base_url}/chat/completions", timeout=30, json={
            "model": "rlm/root", "messages": [{"role": "user", "content": "What rose?"}],
            "rlm": {"path": "reports/q3.txt"}})
        assert ok.status_code == 200, ok.text
        prompt = upstream.root_requests[0].messages[-1]["content"]
        assert "q3.txt" in prompt and "Q3 revenue rose" in prompt and "/proc/self/fd" not in prompt
        for bad in ("../secret.txt", "link-out.txt", str(outside)):
            response = httpx.post(f"{running.base_url}/chat/completions", timeout=30, json={
                "model": "rlm/root", "messages": [{"role": "user", "content": "q"}], "rlm": {"path": bad}})
            assert response.status_code == 400, bad
            assert "TOP SECRET" not in response.text
        assert "TOP SECRET" not in str([r.messages for r in upstream.requests])
