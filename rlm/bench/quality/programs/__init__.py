"""The programs a scripted oracle root writes, one self-contained file per task family.

Each file is sent whole, as root code, to the sandbox (which cannot import rlm), so it
uses the standard library only and repeats the little it shares with the others. The
host imports the same files: the scripted sub-model answers a sub-call with
``solve_piece``, and the offline base model and summary agent read with it too.

Every program has the same four parts: ``pieces(context)`` splits the context,
``sub_prompt``/``parse_sub_prompt`` carry one piece to a sub-call and back,
``solve_piece(piece, query)`` answers for one piece (a JSON string), and
``combine(partials, query, wrong)`` answers the query; ``wrong=True`` makes the
deliberately wrong answer the harness must score near 0.
"""
