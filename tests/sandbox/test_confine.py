"""The Landlock layer on its own, in a child process of the test: what it refuses, with the test's own listeners."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rlm.repl.sandbox import confine

CHILD = textwrap.dedent("""\
    import os, socket, sys
    sys.path.insert(0, sys.argv[1])
    import confine
    port, name, parent, work = int(sys.argv[2]), "\\0" + sys.argv[3], int(sys.argv[4]), sys.argv[5]
    confine.landlock({"write": [work], "no_tcp": True})
    out = []
    def attempt(what, action):
        try:
            action(); out.append(what + " ok")
        except OSError as e:
            out.append(f"{what} {e.errno}")
    attempt("tcp", lambda: socket.create_connection(("127.0.0.1", port), timeout=5).close())
    attempt("abstract", lambda: socket.socket(socket.AF_UNIX).connect(name))
    attempt("signal", lambda: os.kill(parent, 0))
    attempt("write", lambda: open(os.path.join(work, "mine"), "w").close())
    print(" | ".join(out))""")


@pytest.mark.skipif(confine.landlock_abi() < confine.SCOPE_ABI, reason="Landlock ABI 6 (scopes) is not offered here")
def test_landlock_refuses_tcp_the_hosts_abstract_sockets_and_signals_out_of_its_domain(tmp_path: Path) -> None:
    tcp = socket.create_server(("127.0.0.1", 0))
    abstract = socket.socket(socket.AF_UNIX)
    name = f"rlm-test-{secrets.token_hex(8)}"
    abstract.bind("\0" + name)
    abstract.listen()
    with tcp, abstract:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(Path(confine.__file__).parent), str(tcp.getsockname()[1]), name,
             str(os.getpid()), str(tmp_path)],
            capture_output=True, text=True, timeout=60, check=False)
    # EACCES from the TCP rule, EPERM from each scope; the one dir it may write still takes a file
    assert done.stdout.strip() == "tcp 13 | abstract 1 | signal 1 | write ok", done.stderr
