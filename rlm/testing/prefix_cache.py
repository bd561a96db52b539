"""A provider-style prompt prefix cache for the scripted server, so tests see cached tokens.

It behaves as OpenAI documents its own: prompts of 1,024 tokens or more can hit, the hit
is the longest prefix already seen, in steps of 128 tokens. Tokens are the server's
estimate (4 characters each), so a block is 512 characters.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from .wire import message_text

#: Characters per 128-token step.
BLOCK_CHARS = 512
#: Prompts shorter than this many tokens never hit.
MIN_TOKENS = 1024


class PrefixCache:
    """Remembers a digest of every 512-character prefix of the prompts it has seen, per model."""

    def __init__(self) -> None:
        self._seen: set[bytes] = set()
        self._lock = threading.Lock()

    def hit(self, model: str, messages: list[dict[str, Any]]) -> int:
        """The cached prompt tokens of this request, then remember its prefixes."""
        text = "".join(f"{m.get('role')}:{message_text(m.get('content'))}" for m in messages)
        digest = hashlib.blake2b(model.encode(), digest_size=16)
        prefixes = []
        for start in range(0, len(text) - BLOCK_CHARS + 1, BLOCK_CHARS):
            digest.update(text[start:start + BLOCK_CHARS].encode("utf-8", "surrogatepass"))
            prefixes.append(digest.copy().digest())
        with self._lock:
            blocks = next((n for n in range(len(prefixes), 0, -1) if prefixes[n - 1] in self._seen), 0)
            self._seen.update(prefixes)
        tokens = blocks * BLOCK_CHARS // 4
        return tokens if tokens >= MIN_TOKENS else 0
