"""Start a 2-process gloo job without torchrun's agent (the same env:// rendezvous torchrun
sets up, at a fraction of its start-up cost), so a test can launch the DDP path many times."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile

from tests.conftest import ROOT, subprocess_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_two_ranks(args: list[str], timeout: float = 120) -> list[subprocess.CompletedProcess]:
    """Run ``python ARGS`` as ranks 0 and 1; both completed processes (output captured in
    files, so a chatty rank can never block on a full pipe while its peer waits for it)."""
    port = free_port()
    procs, logs = [], []
    for rank in (0, 1):
        env = subprocess_env()
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                   LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2")
        out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
        logs.append((out, err))
        procs.append(subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, text=True,
                                      stdout=out, stderr=err))
    done = []
    try:
        for p, (out, err) in zip(procs, logs, strict=True):
            p.wait(timeout=timeout)
            out.seek(0)
            err.seek(0)
            done.append(subprocess.CompletedProcess(p.args, p.returncode, out.read(),
                                                    err.read()))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for out, err in logs:
            out.close()
            err.close()
    return done
