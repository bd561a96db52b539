"""Token counts for any amount of text, without token lists: exact by default, sampled past a size.

Counts come from the Rust tokenizer of the ``bpe-openai`` wheel (``PyTokenizer.count``), whose
counts equal tiktoken's ``encode_ordinary`` (tests compare them on prose, code, CJK and fuzzed
text) but whose cost stays linear: tiktoken's grows faster on one long run with no spaces
(4 M letters: 5.3 s against 0.47 s here) and it builds a Python int per token. Neither releases
the GIL, so threads would not help.

Text is counted one block at a time, cut just after a line break followed by a letter or digit.
The encodings' pre-tokenizers never join across such a cut, so block counts add up to the whole
count exactly (a test checks it), no UTF-8 copy of the whole text is made, and a step timeout
can interrupt between blocks.

Standard library and the tokenizer wheels only: copied into each sandbox kernel as
``_rlm_counter.py``, so root code counts where the text is and nothing crosses the bridge.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Callable
from types import ModuleType

DEFAULT_ENCODING = "o200k_base"
#: The encodings counted offline; o200k_harmony adds special tokens only, so it counts as o200k_base.
ENCODINGS = ("o200k_base", "cl100k_base")
_SAME_COUNTS = {"o200k_harmony": "o200k_base"}

#: ``count_tokens`` is exact up to this many characters (about 0.5 s of English here), sampled above.
EXACT_CHARS = 8 * 2**20
#: Blocks counted in one call: short enough to interrupt, long enough that the call overhead vanishes.
BLOCK_CHARS = 2**20
#: How a sampled count reads the text: this many evenly spaced windows of this many characters.
SAMPLES, SAMPLE_CHARS = 256, 4096


def encoding_name_for(model: str | None) -> str:
    """The encoding tiktoken maps ``model`` to, or ``o200k_base`` for unknown models.

    Provider prefixes (``openai/gpt-4o``) are ignored; encodings that are not shipped
    offline (the pre-2023 ones) also fall back to ``o200k_base``.
    """
    if not model:
        return DEFAULT_ENCODING
    import tiktoken.model  # the model table only: no BPE file is loaded

    try:
        name = tiktoken.model.encoding_name_for_model(model.rsplit("/", 1)[-1])
    except KeyError:
        return DEFAULT_ENCODING
    return name if _SAME_COUNTS.get(name, name) in ENCODINGS else DEFAULT_ENCODING


@functools.lru_cache(maxsize=4)
def counter(encoding: str = DEFAULT_ENCODING) -> Callable[[str], int]:
    """The exact count of one string for ``encoding`` (fine up to a few MB per call)."""
    tokenizer = _bindings().tokenizer_for_encoding(_SAME_COUNTS.get(encoding, encoding))
    return tokenizer.count  # type: ignore[no-any-return]


def _bindings() -> ModuleType:
    """The wheel's Rust extension alone: ``import bpe_openai`` would spend 0.7 s building Python tables."""
    loaded = sys.modules.get("bpe_openai._bindings")
    if loaded is not None:
        return loaded
    package = importlib.util.find_spec("bpe_openai")  # finds the package without running it
    folders = list(package.submodule_search_locations or ()) if package is not None else []
    for folder in folders:
        for name in sorted(os.listdir(folder)):
            if name.startswith("_bindings.") and name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
                spec = importlib.util.spec_from_file_location("bpe_openai._bindings", os.path.join(folder, name))
                if spec is not None and spec.loader is not None:
                    module = importlib.util.module_from_spec(spec)
                    spec.loader.exec_module(module)
                    sys.modules[spec.name] = module
                    return module
    raise ImportError("rlm counts tokens with the bpe-openai wheel, which is not installed for this Python "
                      "(pip install bpe-openai)")


def counter_for(model: str | None) -> Callable[[str], int]:
    return counter(encoding_name_for(model))


def safe_cut(text: str, at: int, stop: int) -> int:
    """The first position in ``[at, stop)`` right after a line break followed by a letter or digit, else -1.

    Counts of the two sides of such a cut add up to the count of the whole.
    """
    at = text.find("\n", at, stop)
    while at != -1:
        if at + 1 < len(text) and text[at + 1].isalnum():
            return at + 1
        at = text.find("\n", at + 1, stop)
    return -1


def count(text: str, model: str | None = None) -> int:
    """The exact number of tokens in ``text``; special-token strings count as plain text."""
    tokens = counter_for(model)
    total, start, n = 0, 0, len(text)
    while n - start > BLOCK_CHARS:
        cut = safe_cut(text, start + BLOCK_CHARS, n)
        if cut == -1:
            break  # no safe cut in the rest: one call for all of it
        total += tokens(text[start:cut])
        start = cut
    return total + tokens(text[start:] if start else text)


def estimate(text: str, model: str | None = None) -> int:
    """Tokens in ``text`` from exact counts of evenly spaced windows, scaled to its length."""
    n = len(text)
    if n <= SAMPLES * SAMPLE_CHARS:
        return count(text, model)
    tokens = counter_for(model)
    step = n // SAMPLES
    counted = sum(tokens(text[i * step : i * step + SAMPLE_CHARS]) for i in range(SAMPLES))
    return round(counted * n / (SAMPLES * SAMPLE_CHARS))


def count_tokens(text: str, model: str | None = None, *, exact: bool | None = None) -> int:
    """Tokens in ``text`` for ``model``: exact up to 8 M characters, else sampled (``exact=`` decides).

    Exact costs about 1 s per 16 MB of English here; the sample reads 1 MB of the text
    wherever it is and is usually within a few percent on text of one kind throughout.

    Example::

        count_tokens(context[:100_000])          # exact
        count_tokens(context, exact=True)        # exact however long (slower)
    """
    if not isinstance(text, str):
        raise TypeError(f"count_tokens(text) takes a str, got {type(text).__name__}")
    if exact is None:
        exact = len(text) <= EXACT_CHARS
    return count(text, model) if exact else estimate(text, model)
