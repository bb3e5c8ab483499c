"""Helpers shared by the bench scripts: markdown tables, /proc process facts, starting a server."""

import http.client
import os
import select
import signal
import subprocess
import time


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


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (steal included), from /proc/stat."""
    with open("/proc/stat") as f:
        ticks = [int(t) for t in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) pid has used; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class ServeProcess:
    """`respawn serve --port 0 ...` (cmd) as a context manager: started with its stderr in
    LOGS/<label>.log, ready once /v2/health/ready answers 200 (within 120 s), and always stopped
    by pid (SIGTERM, then SIGKILL), its workers too."""

    def __init__(self, cmd, label: str, logs=None):
        self.cmd, self.label, self.logs, self.proc, self.port = cmd, label, logs, None, None

    def __enter__(self):
        self.proc = start_serve(self.cmd, self.label, self.logs)
        try:
            self.port = listening_port(self.proc, self.label, self.cmd)
            deadline = time.monotonic() + 120
            while self.get("/v2/health/ready")[0] != 200:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"{self.label}: no ready worker within 120 s "
                                       f"(exit {self.proc.poll()})")
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def conn(self, timeout=120.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get(self, path):
        """(status, body) of GET path; (0, b"") when there is no answer."""
        c = self.conn(10)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        except (OSError, http.client.HTTPException):
            return 0, b""
        finally:
            c.close()

    def log(self) -> str:
        if not self.logs:
            return ""
        with open(os.path.join(self.logs, self.label + ".log"), errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        children = [int(n) for n in os.listdir("/proc")
                    if n.isdigit() and ppid_of(int(n)) == self.proc.pid]
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc.stdout.close()
        deadline = time.monotonic() + 5
        while any(is_live(p, b"respawn") for p in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        for p in children:  # workers exit with their supervisor; make sure of it
            if is_live(p, b"respawn"):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
