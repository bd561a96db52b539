"""Every error rlm raises is importable from ``rlm``, drawn in ``rlm.errors``' tree and in docs/usage.md's."""

from __future__ import annotations

import inspect

import pytest
from doc_pages import ROOT

import rlm
import rlm.errors
from rlm.errors import RLMError

ERRORS = sorted(name for name, obj in vars(rlm.errors).items()
                if inspect.isclass(obj) and issubclass(obj, RLMError) and obj.__module__ == "rlm.errors")


@pytest.mark.parametrize("name", ERRORS)
def test_an_error_is_public_and_in_both_trees(name: str) -> None:
    assert name in rlm.__all__ and getattr(rlm, name) is getattr(rlm.errors, name), f"`from rlm import {name}` fails"
    tree = rlm.errors.__doc__ or ""
    assert f" {name}" in tree, f"{name} is missing from the tree in rlm/errors.py's docstring"
    usage = (ROOT / "docs" / "usage.md").read_text(encoding="utf-8").split("## Errors", 1)[1].split("\n## ", 1)[0]
    assert name in usage, f"{name} is missing from the error tree of docs/usage.md (## Errors)"
