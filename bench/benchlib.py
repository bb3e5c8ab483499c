"""Helpers shared by the bench scripts: markdown tables, /proc process facts, starting a server."""

import os
import select
import subprocess


def table(header, rows) -> None:
    """Prints a markdown table."""
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
    print()


def ppid_of(pid: int) -> int:
    """The parent pid of pid, or -1 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def is_live(pid: int, name: bytes) -> bool:
    """True if pid is a live (not zombie) process whose command line contains name."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
    except (OSError, IndexError):
        return False
    return state != "Z" and name in cmd


def start_serve(cmd, label: str, logs=None) -> subprocess.Popen:
    """Starts `respawn serve --port 0 ...` (cmd) with stdout piped; its stderr goes to
    LOGS/<label>.log, or nowhere."""
    stderr = subprocess.DEVNULL
    if logs:
        os.makedirs(logs, exist_ok=True)
        stderr = open(os.path.join(logs, label + ".log"), "wb")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True)
    if stderr is not subprocess.DEVNULL:
        stderr.close()
    return proc


def listening_port(proc: subprocess.Popen, label: str, cmd) -> int:
    """The port from the server's "listening on HOST:PORT" line (within 30 s), or an error."""
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    if "listening on" not in line:
        raise RuntimeError(f"{label}: server did not start ({line!r}, exit {proc.poll()}): "
                           f"{' '.join(cmd)}")
    return int(line.strip().rsplit(":", 1)[1])
