"""``rlm.checkpoint``: the documented home of a map's checkpoint, which lives with the maps (``rlm.datasets``)."""

from .datasets.checkpoint import BatchRecord, Checkpoint, Row, input_hash

__all__ = ["BatchRecord", "Checkpoint", "Row", "input_hash"]
