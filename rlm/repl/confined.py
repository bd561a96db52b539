"""Documents read for a look, not a run: ``rlm.estimate`` counts their text, not their bytes.

The host never parses a document, so to count what the root would read, the documents
are read where a run would read them: in a fresh sandbox kernel (the same isolation and
bounds as a run's; it is started, told the documents, asked, and killed), or in this
process's workers for ``sandbox="local"``, where a run reads them too.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .. import runtime
from .document_context import ContextInfo, DocumentContext, read_here
from .sandbox.config import SandboxConfig


class _NoCalls:
    """The host of a kernel that only reads documents: it runs no step, so it makes no call."""

    tool_names: tuple[str, ...] = ()


def read_documents(context: DocumentContext, sandbox: str | SandboxConfig = "kernel") -> ContextInfo:
    """What the root would be told of these documents, and their size in characters and tokens."""
    if sandbox == "local":
        return read_here(context)[1]
    config = replace(sandbox, warm_kernels=0) if isinstance(sandbox, SandboxConfig) else SandboxConfig(warm_kernels=0)
    return runtime.run(_in_kernel(context, config))


async def _in_kernel(context: DocumentContext, config: SandboxConfig) -> ContextInfo:
    from .kernel_repl import KernelREPL
    from .sandbox.pool import KernelPool

    repl = KernelREPL(KernelPool(config))
    try:
        host: Any = _NoCalls()
        info = await repl.start(context, host)
    finally:
        await repl.close()
        await repl.pool.aclose()
    assert info is not None
    return info
