"""The blocking API inside a real Jupyter kernel (whose event loop is already running)."""

from __future__ import annotations

import nbformat
from nbclient import NotebookClient

CELLS = [
    "import asyncio\n"
    "from rlm import RLM\n"
    "from rlm.testing import ScriptedLM\n"
    "lm = ScriptedLM(root=lambda r: 'FINAL_VAR(x)' if len(r.messages) > 2 else "
    "\"```repl\\nx = llm_batch(['a', 'b', 'c'])\\n```\",\n"
    "                sub=lambda r: r.prompt.upper(), latency=0.05).start()\n"
    "rlm = RLM('root', 'sub', base_url=lm.base_url, api_key='k')\n"
    "assert asyncio.get_event_loop().is_running()",
    "result = rlm.completion('some context', 'shout')\n"
    "print(result.answer, result.iterations)",
    "result2 = await rlm.acompletion('some context', 'shout')\n"
    "print(result2.answer)",
    "print('ignored', flush=True)\n"
    "result3 = rlm.completion(['a', 'b'], 'again')\n"
    "lm.stop()\n"
    "print(result3.answer, lm.stats['requests'])",
]


def test_completion_and_acompletion_in_a_headless_notebook(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = ["".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream") for cell in nb.cells]
    assert outputs[1] == "['A', 'B', 'C'] 2\n"
    assert outputs[2] == "['A', 'B', 'C']\n"
    assert outputs[3] == "ignored\n['A', 'B', 'C'] 15\n"
