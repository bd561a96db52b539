"""The task generators: S-NIAH, OOLONG-style aggregation, OOLONG-Pairs-style pairs, code QA.

Each module makes ``Item``s from (size, seed, index) and is an ``rlm bench`` subcommand
(``add_arguments``/``run``, both thin: the work is in ``rlm.bench.quality.cli``).
"""
