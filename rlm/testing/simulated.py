"""A simulated model for offline demos: no LLM, but answers really computed from the text.

The simulated root writes the program an RLM root typically writes (chunk the
context, ``llm_batch`` an extraction prompt over the chunks, combine); the simulated
sub-model answers each extraction prompt extractively, quoting the excerpt's
sentences that contain the question's key terms, or ``NONE``. A dict or list context is
read item by item (its texts, not its keys), a document page by page, and each quote
is named after where it came from (``(report.pdf, page 3) ...``); asked about a figure,
it draws a PDF's pages that hold images and shows them to the sub-model
(``llm_query(..., images=[page_image(n)])``).
"""

from __future__ import annotations

import random
import re
from typing import Any

from ..core.prompts import ANSWER_NOW
from .server import ScriptedLM, ScriptedRequest
from .vision import describe

_STOP = frozenset(
    [
        "which", "what", "when", "where", "who", "whom", "whose", "why", "how", "does", "did", "do", "the", "a",
        "an", "of", "in", "on", "to", "for", "and", "or", "any", "all", "this", "that", "these", "those", "there",
        "their", "them", "with", "from", "into", "about", "mention", "mentions", "mentioned", "section", "sections",
        "document", "documents", "report", "text", "excerpt", "find", "list", "show", "tell", "give", "please",
        "is", "are", "was", "were", "be", "been", "being", "it", "its", "as", "at", "by", "not", "no", "yes",
        "quote", "every", "sentence", "helps", "answer", "question", "reply", "none",
    ]
)

_QUERY_RE = re.compile(r"The query:\n(.*?)\n\nStart by", re.S)
_PROMPT_RE = re.compile(r"^Question: (.*?)\n.*?\nExcerpt:\n(.*)$", re.S)


def key_terms(question: str) -> list[str]:
    """The question's content words, cut to a 5-letter stem so 'mergers' finds 'merger'."""
    words = re.findall(r"[A-Za-z][A-Za-z\-']{2,}", question.lower())
    return sorted({w[:5] for w in words if w not in _STOP})


def extractive_answer(prompt: str) -> str:
    """Sentences of the prompt's excerpt that contain a key term of its question, or NONE."""
    match = _PROMPT_RE.match(prompt)
    question, excerpt = (match.group(1), match.group(2)) if match else (prompt.split("\n", 1)[0], prompt)
    terms = key_terms(question)
    if not terms:
        return "NONE"
    sentences = re.split(r"(?<=[.!?])\s+|\n+", excerpt)
    hits = [s.strip() for s in sentences if s.strip() and any(t in s.lower() for t in terms)]
    return "\n".join(hits) if hits else "NONE"


ROOT_PROGRAM = """\
Let me split the context into chunks and ask the sub-model about every chunk in parallel.

```repl
query = {query!r}
def sources(name, value):
    # A document's pages (slides, sheets, ...) one by one, named so that an answer can cite them.
    if getattr(value, "pages", None):
        return [((name + ", " if name else "") + label, page) for label, page in zip(value.labels, value.pages)]
    return [(name, value if isinstance(value, str) else str(value))]
if isinstance(context, dict):
    parts = [p for key, value in context.items() for p in sources(str(key), value)]
elif isinstance(context, (list, tuple)):
    parts = [p for i, value in enumerate(context) for p in sources(f"item {{i}}", value)]
else:
    parts = sources("", context)
size = 8_000
chunks = []
for name, text in parts:
    start = 0
    while start < len(text):
        end = text.find("\\n", start + size)
        end = len(text) if end == -1 else end + 1
        chunks.append((name, text[start:end]))
        start = end
print(f"{{sum(len(t) for _, t in parts):,}} characters -> {{len(chunks)}} chunks")
prompts = [
    f"Question: {{query}}\\nQuote every sentence of the excerpt that helps answer the question, "
    f"or reply NONE.\\n\\nExcerpt:\\n{{chunk}}"
    for _, chunk in chunks
]
found = llm_batch(prompts)
failed = [i for i, f in enumerate(found) if isinstance(f, FailedCall)]
relevant = [(name, f.strip()) for (name, _), f in zip(chunks, found)
            if not isinstance(f, FailedCall) and f.strip() != "NONE"]
hits = [(f"({{name}}) " if name else "") + line for name, f in relevant for line in f.splitlines()]
if any(w in query.lower() for w in ("figure", "chart", "plot", "image", "scan", "diagram", "picture")):
    # A PDF's pages with images, drawn and shown to the sub-model (a figure's content is not text).
    pdfs = [(k, v) for k, v in (context.items() if isinstance(context, dict) else [("", context)])
            if getattr(v, "kind", "") == "pdf"]
    for name, doc in pdfs:
        for n in doc.info.get("image_pages", [])[:4]:
            seen = llm_query(f"Question: {{query}}\\nWhat does this page show?", images=[doc.page_image(n)])
            hits.append(f"({{name + ', ' if name else ''}}page {{n}}, as an image) {{seen}}")
answer = "\\n".join(hits) if hits else "The document does not say."
print(f"{{len(relevant)}} of {{len(chunks)}} chunks were relevant; {{len(failed)}} sub-calls failed")
print(answer[:2000])
```
"""

ROOT_FINISH = "The relevant sentences are collected in `answer`.\n\nFINAL_VAR(answer)"


def simulated_root(request: Any) -> str:
    """The root's reply for a ``ScriptedLM`` request: the program first, then the answer."""
    messages = request.messages
    turns = sum(1 for m in messages if m.get("role") == "assistant")
    last = str(messages[-1].get("content") or "") if messages else ""
    if turns == 0 and last != ANSWER_NOW:
        first_user = next((str(m.get("content") or "") for m in messages if m.get("role") == "user"), "")
        match = _QUERY_RE.search(first_user)
        query = match.group(1).strip() if match else first_user[-200:]
        return ROOT_PROGRAM.format(query=query)
    return ROOT_FINISH


def simulated_sub(request: Any) -> str:
    """The sub-model's reply for a ``ScriptedLM`` request; about images, only what their headers say."""
    if request.images:
        return describe(request.images)
    return extractive_answer(request.prompt)


def simulated_lm(
    *, latency: float | tuple[float, float] = (0.2, 0.5), root_latency: float = 0.5
) -> ScriptedLM:
    """A started ``ScriptedLM`` playing the root and the sub-model, with model-like latency.

    Stop it with ``.stop()`` (or use it as a context manager).
    """
    sub_latency = latency

    def per_request(request: ScriptedRequest) -> float:
        if request.role == "root":
            return root_latency
        return random.uniform(*sub_latency) if isinstance(sub_latency, tuple) else sub_latency

    return ScriptedLM(root=simulated_root, sub=simulated_sub, latency=per_request).start()
