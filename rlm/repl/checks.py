"""The argument checks of root code's helpers (``llm_query``, ``llm_batch``, ``rlm_query``, ...).

Standard library only: ``LocalREPL`` imports it, and the kernel sandbox copies it into each
kernel's run directory as ``_rlm_checks.py``, so a wrong argument gets the same ``TypeError``
in both REPLs, raised in root code before anything crosses to the host. Images are checked
by ``rlm.lm.images`` (``_rlm_images.py`` in the kernel).
"""

from __future__ import annotations

from typing import Any

try:  # inside rlm
    from ..lm import images as _images
except ImportError:  # in the kernel: the copy beside this file
    import _rlm_images as _images  # type: ignore[no-redef]


def check_rlm_batch(queries: Any, contexts: Any, max_concurrent: Any = None) -> tuple[list[str], list[Any]]:
    """``rlm_query_batched(queries, contexts=None, max_concurrent=None)``: as many contexts as queries, or none."""
    if max_concurrent is not None and (isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int)
                                       or max_concurrent < 1):
        raise TypeError(f"rlm_query_batched(max_concurrent=...) takes an int >= 1 or None, got {max_concurrent!r}")
    if isinstance(queries, str) or not isinstance(queries, (list, tuple)):
        raise TypeError("rlm_query_batched(queries) takes a list of query strings")
    if not all(isinstance(q, str) for q in queries):
        raise TypeError("rlm_query_batched(queries): every query must be a string")
    if contexts is None:
        return list(queries), [None] * len(queries)
    if isinstance(contexts, str) or not isinstance(contexts, (list, tuple)) or len(contexts) != len(queries):
        raise TypeError("rlm_query_batched(queries, contexts): contexts must be a list as long as queries")
    return list(queries), list(contexts)


def check_query(prompt: Any, model: Any, images: Any = None, detail: Any = None) -> list[bytes]:
    """The argument checks of ``llm_query``, the same in both REPLs; returns the images as bytes."""
    if not isinstance(prompt, str):
        raise TypeError(f"llm_query(prompt) takes a string, got {type(prompt).__name__}")
    _check_model("llm_query", model)
    _images.check_detail(detail, "llm_query")
    return _images.check(images)


def check_batch_images(images: Any, prompts: list[str], detail: Any) -> list[list[bytes] | _images.ImageError] | None:
    """``llm_batch(images=...)``: one entry per prompt; a bad entry is that item's error (its ``FailedCall``)."""
    _images.check_detail(detail, "llm_batch")
    return _images.check_batch(images, len(prompts))


def check_batch(prompts: Any, max_concurrent: Any, model: Any) -> list[str]:
    """The argument checks of ``llm_batch``; returns the prompts as a list."""
    if isinstance(prompts, (str, bytes)):
        raise TypeError(
            "llm_batch(prompts) takes a list of prompt strings, not one string; use llm_query(prompt) for one"
        )
    try:
        items = list(prompts)
    except TypeError:
        raise TypeError(f"llm_batch(prompts) takes a list of strings, got {type(prompts).__name__}") from None
    bad = [i for i, p in enumerate(items) if not isinstance(p, str)]
    if bad:
        raise TypeError(
            f"llm_batch(prompts): items {bad[:5]} are not strings "
            f"(first is {type(items[bad[0]]).__name__}); convert them with str() first"
        )
    if not isinstance(max_concurrent, int) or isinstance(max_concurrent, bool):
        raise TypeError(f"llm_batch(max_concurrent=...) takes an int, got {type(max_concurrent).__name__}")
    if max_concurrent < 1:
        raise ValueError(f"llm_batch(max_concurrent=...) must be a positive int, got {max_concurrent!r}")
    _check_model("llm_batch", model)
    return items


def check_rlm_query(query: Any) -> None:
    if not isinstance(query, str):
        raise TypeError(f"rlm_query(query) takes a string, got {type(query).__name__}")


def _check_model(fn: str, model: Any) -> None:
    if model is not None and not isinstance(model, str):
        raise TypeError(f"{fn}(model=...) takes a model name (str) or None, got {type(model).__name__}")
