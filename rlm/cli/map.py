"""``rlm map``: a resumable map over a JSONL or CSV file from the command line.

``rlm map --input rows.jsonl --prompt-template "Label: {text}" --checkpoint runs/x.sqlite``
fills the template from each row, sends one sub-call per row, commits each answer as it
arrives and prints the answers as JSONL; run it again to resume. ``rlm map --status
runs/x.sqlite`` says how far a map got. ``--via batch`` sends the rows through the
provider's Batch API at half price (a rerun polls the same batch). ``--query Q`` runs a
completion of Q over each row instead (``map_rlm``; ``--executor ray``: as Ray tasks); with
``--input FOLDER`` it runs one per document or text file in the folder.
Bad input, or flags that do not go together, exit 2 with one line, never a traceback.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

from rlm.cli import arguments
from rlm.datasets.rows import jsonl_rows, prompts_of

ROWS = "a .jsonl file (one JSON object per line) or a .csv file with a header row (with --query, also a folder)"
CHECKPOINT = "a new path, or the --checkpoint file of an earlier rlm map to resume it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``rlm map``."""
    parser.add_argument("--input", "-i", metavar="FILE|DIR", type=arguments.input_file(ROWS, directory=True),
                        help="rows: a .jsonl file (one object per line) or a .csv; with --query, also a folder "
                             "(one completion per document in it)")
    parser.add_argument("--prompt-template", "-t", metavar="TEMPLATE",
                        help="the prompt for each row, with {field} for the row's fields (default: {prompt})",
                        default="{prompt}")
    parser.add_argument("--checkpoint", "-k", metavar="FILE", type=arguments.sqlite_file(CHECKPOINT, new=True),
                        help="SQLite checkpoint: a rerun resumes from it")
    parser.add_argument("--output", "-o", metavar="FILE", type=arguments.output_file("a file for the answers"),
                        help="write the answers as JSONL here (default: stdout)")
    parser.add_argument("--model", "-m", default=None,
                        help="the model of the sub-calls (default gpt-5-mini); with --query, the root model (gpt-5)")
    parser.add_argument("--query", "-q", default=None,
                        help="run a completion of this question per row, the filled template as its context")
    parser.add_argument("--sub-model", "-s", default=None, help="with --query: the sub-calls' model (default: --model)")
    parser.add_argument("--sandbox", choices=("kernel", "local"), default="kernel",
                        help="with --query: where root code runs (default kernel)")
    parser.add_argument("--executor", choices=("local", "ray"), default="local",
                        help="with --query: run the completions here or as Ray tasks (pip install 'rlm[ray]')")
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint (else $OPENAI_BASE_URL)")
    parser.add_argument("--max-concurrent", type=arguments.number(int, 1), default=32,
                        help="calls at once (default 32)")
    parser.add_argument("--via", choices=("calls", "batch"), default="calls",
                        help="calls: one request per row; batch: the provider's Batch API, half price, within 24 h")
    parser.add_argument("--poll-s", type=float, default=30.0, metavar="SECONDS",
                        help="with --via batch: seconds between status checks (default 30)")
    parser.add_argument("--status", metavar="CHECKPOINT",
                        type=arguments.sqlite_file("the --checkpoint file of an earlier rlm map", new=False),
                        help="print how far the map in CHECKPOINT got, and exit")


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a .jsonl or .csv file, as dicts."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    return jsonl_rows(path.read_text(encoding="utf-8"), str(path))


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every row has an answer, 1 when some failed (a rerun retries them), 2 for bad input."""
    from rlm import RLM, BatchAPI, Checkpoint, RLMError
    from rlm.repl.contexts import files_in

    if args.status:
        with Checkpoint(args.status) as cp:
            batches = [{"id": b.batch_id, "status": b.status, "items": len(b.items)} for b in cp.batches()]
            print(json.dumps({**cp.status(), **({"batches": batches} if batches else {})}))
        return 0
    problem = _combination(args)
    if problem:
        return _fail(problem, 2)
    folder = Path(args.input).is_dir()
    if folder and not args.query:
        return _fail(f"--input {args.input} is a folder, which runs one completion per document: pass --query Q "
                     f"(or {ROWS})", 2)
    try:
        rows: list[Any] = [Path(p) for p in files_in(args.input)] if folder else prompts_of(
            read_rows(Path(args.input)), args.prompt_template)
    except UnicodeDecodeError:
        return _fail(f"{args.input} is not UTF-8 text; pass {ROWS}", 2)
    except (OSError, ValueError, csv.Error) as exc:
        return _fail(str(exc), 2)
    if folder and not rows:
        return _fail(f"no documents or text files in {args.input}; pass {ROWS}, or a folder of documents", 2)
    if not rows:
        return _fail(f"{args.input} has no rows; pass {ROWS}", 2)
    simulated = not os.environ.get("OPENAI_API_KEY") and not (args.base_url or os.environ.get("OPENAI_BASE_URL"))
    server = None
    model = args.model or ("gpt-5" if args.query else "gpt-5-mini")
    sub_model, base_url = args.sub_model or model, args.base_url
    if simulated:
        from rlm.testing import simulated_lm

        print("rlm map: SIMULATED MODE (no OPENAI_API_KEY or --base-url): a scripted model on 127.0.0.1 answers; "
              "set OPENAI_API_KEY or pass --base-url for a real model.", file=sys.stderr)
        server = simulated_lm(latency=0.0)
        model, sub_model, base_url = "simulated-root", "simulated-sub", server.base_url
    try:
        with RLM(model if args.query else sub_model, sub_model, base_url=base_url, progress=True,
                 api_key="simulated" if simulated else None, sandbox=args.sandbox if args.query else "local") as rlm:
            if args.query:
                answers = rlm.map_rlm(rows, args.query, checkpoint=args.checkpoint, executor=args.executor,
                                      max_concurrent=args.max_concurrent, view=False)
            else:
                via = BatchAPI(poll_s=args.poll_s) if args.via == "batch" else "calls"
                answers = rlm.map(rows, checkpoint=args.checkpoint, max_concurrent=args.max_concurrent, via=via,
                                  view=False)
    except RLMError as exc:
        return _fail(f"{type(exc).__name__}: {' '.join(str(exc).split())[:600]}", 1)
    except KeyboardInterrupt:
        return _fail("interrupted; run the same command again to resume" if args.checkpoint else "interrupted", 130)
    finally:
        if server is not None:
            server.stop()
    lines = [json.dumps({"index": i, **({"file": os.path.relpath(rows[i], args.input)} if folder else {}),
                         "answer": None if _failed(a) else str(getattr(a, "answer", a)),
                         "error": getattr(a, "error", None) and str(a)}, ensure_ascii=False)
             for i, a in enumerate(answers)]
    if args.output:
        Path(args.output).write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        print("\n".join(lines))
    failed = sum(1 for a in answers if _failed(a))
    if failed:
        print(f"rlm map: {failed} of {len(answers)} failed; run again to retry them", file=sys.stderr)
    return 1 if failed else 0


def _combination(args: argparse.Namespace) -> str | None:
    """What is wrong with this set of flags, in one line, before anything runs."""
    if not args.input:
        return "pass --input FILE.jsonl|.csv (or --status CHECKPOINT)"
    if not args.poll_s > 0:
        return f"--poll-s must be a positive number of seconds, got {args.poll_s}"
    if args.via == "batch" and args.query:
        return ("--via batch sends one prompt per row, and a completion (--query) makes several calls that "
                "depend on each other: drop --via batch, or --query")
    if args.executor == "ray" and not args.query:
        return ("--executor ray runs completions (--query Q) as Ray tasks; a map of prompts is only model calls, "
                "sent from here: pass --query, or drop --executor ray")
    if args.executor == "ray" and importlib.util.find_spec("ray") is None:
        return "--executor ray needs Ray: pip install 'rlm[ray]'"
    return None


def _failed(answer: Any) -> bool:
    from rlm import FailedCall

    return isinstance(answer, FailedCall)


def _fail(message: str, code: int) -> int:
    print(f"rlm map: {message}", file=sys.stderr)
    return code
