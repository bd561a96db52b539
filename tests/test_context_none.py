"""``context=None`` is not a context: every entry that runs a completion says so before any model call."""

from __future__ import annotations

import asyncio

import pytest

from rlm import RLM
from rlm.rlm_repl import RLM_REPL
from rlm.testing import ScriptedLM

NONE = r'context is None; pass what the root should read \(str, bytes.*directory\), or "" for none'


def test_completion_acompletion_and_the_seed_api_refuse_none_before_calling_a_model() -> None:
    with ScriptedLM(root=["FINAL(made up)"]) as lm, \
            RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox="local") as rlm:
        with pytest.raises(TypeError, match=NONE):
            rlm.completion(None, "q")
        with pytest.raises(TypeError, match=NONE):
            asyncio.run(rlm.acompletion(None, "q"))
        with pytest.raises(TypeError, match=r"unsupported context type NoneType"):
            rlm.estimate(None, "q")
        seed = RLM_REPL("k", "root", "sub", base_url=lm.base_url, sandbox="local")
        with pytest.raises(TypeError, match=NONE):
            seed.completion(None, "q")
        seed.rlm.close()
        assert lm.root_requests == []
        assert rlm.completion("", "q").answer == "made up"  # "" is the way to say "no context"


def test_a_session_may_still_start_without_a_context() -> None:
    with ScriptedLM(root=["```repl\nprint(repr(context))\n```", "FINAL(none)"]) as lm, \
            RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox="local") as rlm, rlm.session() as s:
        assert s.ask("q").answer == "none"
        assert "''" in lm.root_requests[1].messages[-1]["content"]
