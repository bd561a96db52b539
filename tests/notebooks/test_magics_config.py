"""``%rlm_config`` in a real kernel: a notebook variable stands in for a value only where its type fits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from test_live_view import SETUP, kernel  # noqa: F401 - kernel is a fixture


@dataclass
class Ran:
    """A cell's execute reply (matched to its request) and what it displayed and printed."""

    reply: dict[str, Any]
    displays: list[dict[str, Any]] = field(default_factory=list)
    stdout: str = ""


def run_cell(kc: Any, code: str, timeout: float = 60) -> Ran:
    ran = Ran({})

    def output(msg: dict[str, Any]) -> None:
        if msg["msg_type"] in ("display_data", "execute_result"):
            ran.displays.append(msg["content"]["data"])
        elif msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            ran.stdout += msg["content"]["text"]

    ran.reply = kc.execute_interactive(code, timeout=timeout, output_hook=output)["content"]
    return ran

FUNCTIONS = ("def root():\n    return 1\n\ndef sub():\n    return 2\n\n"
             "from rlm import Budget\nplenty = Budget(max_calls=50)")


def test_a_function_named_like_the_model_leaves_the_model_a_string(kernel: Any) -> None:  # noqa: F811
    _, kc = kernel
    assert run_cell(kc, SETUP.format(n=3, c=2, latency=0.01)).reply["status"] == "ok"
    assert run_cell(kc, FUNCTIONS + "\ntext = 'some text'\n%load_ext rlm").reply["status"] == "ok"
    shown = run_cell(kc, "%rlm_config model=root sub_model=sub budget=plenty base_url={lm.base_url} api_key=k "
                         "sandbox=local max_concurrent=2")
    said = shown.displays[-1]["text/plain"]
    assert "model='root'" in said and "sub_model='sub'" in said and "budget=Budget(max_calls=50" in said, said
    cell = run_cell(kc, "%%rlm --context text\nHow many items?", timeout=60)
    assert cell.reply["status"] == "ok", cell.reply  # was AttributeError: 'function' object has no attribute 'rsplit'
    check = run_cell(kc, "print(_rlm, _rlm_result.usage.calls, sorted(_rlm_result.usage.by_model))")
    assert check.stdout.strip() == "done 5 ['root', 'sub']"


def test_a_value_that_fits_neither_as_a_variable_nor_as_written_names_the_type_it_takes(kernel: Any) -> None:  # noqa: F811
    _, kc = kernel
    assert run_cell(kc, FUNCTIONS + "\nsteps = 7\n%load_ext rlm").reply["status"] == "ok"
    for line, says in (
        ("budget=root", "budget takes a Budget or None, got 'root' (the notebook's root is a function)"),
        ("max_concurrent=sub", "max_concurrent takes an int, got 'sub' (the notebook's sub is a function)"),
        ("step_timeout=soon", "step_timeout takes a float, got 'soon'"),
    ):
        bad = run_cell(kc, f"%rlm_config {line}")
        assert bad.reply["status"] == "error" and bad.reply["ename"] == "UsageError", (line, bad.reply)
        assert bad.reply["evalue"] == f"%rlm_config: {says}"
    good = run_cell(kc, "%rlm_config max_iterations=steps step_timeout=30 stream=False").displays[-1]["text/plain"]
    assert "max_iterations=7" in good and "step_timeout=30" in good and "stream=False" in good, good
