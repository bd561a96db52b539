"""Running over whole datasets: ``rlm.map`` and ``rlm.map_rlm`` (``maps``), resumable from a SQLite
``checkpoint``, sent as calls, through the provider's Batch API (``provider_batch``) or as Ray tasks
(``ray_executor``). Each runs on the engine's one run lifecycle (``rlm.engine``).
"""
