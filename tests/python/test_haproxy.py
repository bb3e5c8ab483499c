"""Two respawn instances behind the real HAProxy, configured by deploy/haproxy/haproxy.cfg (its
`bind` and `server` lines replaced by loopback ones): 2,000 classifier infer requests at
concurrency 16 go through it while one instance is SIGTERMed (graceful drain) and started again
on the same port, and not one of them may fail. This is what the file's retry choices
(retry-on conn-failure empty-response 503, option redispatch 1) and its readiness check are for.

The real worker serves models/classifier.pt on cpu (light: it forks ready in about a second).
Skipped (77) when haproxy is not installed (scripts/common.sh RESPAWN_PACKAGES installs it).
Bounded: the load is paced to about 15 s and everything is reaped by pid, haproxy included.
"""
import csv
import ctypes
import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import respawn_harness as h  # noqa: E402

# $RESPAWN_HAPROXY_CFG: test another file (your own variant of it) the same way.
HAPROXY_CFG = os.environ.get("RESPAWN_HAPROXY_CFG") or os.path.join(h.ROOT, "deploy", "haproxy", "haproxy.cfg")
MODEL = "classifier"
TOTAL = 2000
CONCURRENCY = 16
RATE = 150.0            # requests per second at most: 2,000 take about 13 s
TERM_AT = 300           # SIGTERM instance 1 once this many requests have been sent
BUDGET_S = 60           # the whole load phase, restart included
SERVE_ARGS = ["--drain-timeout-ms", "10000"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_for(text: str, listen_port: int, servers, stats_socket: str) -> str:
    """deploy/haproxy/haproxy.cfg with its bind line on 127.0.0.1:listen_port, its server lines
    replaced by `servers` [(name, port)], and an admin socket for reading server states."""
    lines, bind_done, servers_done = [], False, False
    for line in text.splitlines():
        stripped = line.strip()
        if re.match(r"^bind\s", stripped):
            lines.append(f"    bind 127.0.0.1:{listen_port}")
            bind_done = True
        elif re.match(r"^server\s", stripped):
            if not servers_done:
                lines += [f"    server {name} 127.0.0.1:{port}" for name, port in servers]
                servers_done = True
        elif stripped == "global":
            lines += [line, f"    stats socket {stats_socket} level admin"]
        else:
            lines.append(line)
    if not (bind_done and servers_done):
        raise AssertionError(f"{HAPROXY_CFG}: no bind line or no server lines to replace")
    return "\n".join(lines) + "\n"


def _die_with_parent():
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Haproxy:
    def __init__(self, cfg_path: str, log_path: str, stats_socket: str):
        self.stats_socket = stats_socket
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen([shutil.which("haproxy"), "-f", cfg_path, "-db"],
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         preexec_fn=_die_with_parent)

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(self.stats_socket)
            s.sendall(line.encode() + b"\n")
            chunks = []
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    def servers(self):
        """{server name: (status, total sessions)} of backend respawn."""
        return {name: row[:2] for name, row in self.server_rows().items()}

    def server_rows(self):
        """{server name: (status, total sessions, retries, redispatches)} of backend respawn."""
        text = self.command("show stat").lstrip("# ")
        result = {}
        for row in csv.DictReader(io.StringIO(text)):
            if row.get("pxname") == "respawn" and row.get("svname") not in ("FRONTEND", "BACKEND"):
                result[row["svname"]] = (row["status"], int(row["stot"] or 0),
                                         int(row["wretr"] or 0), int(row["wredis"] or 0))
        return result

    def wait_status(self, name: str, prefix: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if self.servers().get(name, ("",))[0].startswith(prefix):
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-8000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class HaproxyTest(unittest.TestCase):
    def setUp(self):
        with open(h.model_path("classifier_reference.json")) as f:
            reference = json.load(f)
        self.body = json.dumps({"inputs": [reference["input"]]}).encode()
        self.expected = reference["outputs"]["logits"]["data"]
        self.dir = tempfile.mkdtemp(prefix="respawn-haproxy-")
        self.servers = {}
        self.haproxy = None

    def tearDown(self):
        if self.haproxy:
            self.haproxy.stop()
        for server in self.servers.values():
            server.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start_server(self, name, port):
        self.servers[name] = h.Server(["--model", h.model_path("classifier.pt")] + SERVE_ARGS, port=port)

    def test_drain_and_restart_under_load_loses_nothing(self):
        ports = {"respawn1": free_port(), "respawn2": free_port()}
        listen = free_port()
        for name, port in ports.items():
            self.start_server(name, port)
        cfg = os.path.join(self.dir, "haproxy.cfg")
        sock = os.path.join(self.dir, "haproxy.sock")
        with open(HAPROXY_CFG) as f:
            text = config_for(f.read(), listen, sorted(ports.items()), sock)
        with open(cfg, "w") as f:
            f.write(text)
        check = subprocess.run([shutil.which("haproxy"), "-c", "-f", cfg], capture_output=True, text=True)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.haproxy = Haproxy(cfg, os.path.join(self.dir, "haproxy.log"), sock)
        deadline = time.monotonic() + 15
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.05)
        for name in ports:
            self.assertTrue(self.haproxy.wait_status(name, "UP", 15),
                            f"{name} not UP in haproxy\n{self.haproxy.log()}")

        lock = threading.Lock()
        state = {"next": 0, "done": 0}
        failures = []
        statuses = {}
        t0 = time.monotonic()
        stop_at = t0 + BUDGET_S

        def take():
            with lock:
                if state["next"] >= TOTAL:
                    return None
                i = state["next"]
                state["next"] += 1
                return i

        def client():
            conn = None
            while True:
                i = take()
                if i is None or time.monotonic() > stop_at:
                    break
                delay = t0 + i / RATE - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", listen, timeout=30)
                    conn.request("POST", f"/v2/models/{MODEL}/infer", body=self.body,
                                 headers={"Content-Type": "application/json"})
                    r = conn.getresponse()
                    data = r.read()
                    ok = r.status == 200
                    if ok:
                        got = json.loads(data)["outputs"][0]["data"]
                        ok = len(got) == len(self.expected) and all(
                            abs(a - b) < 1e-4 for a, b in zip(got, self.expected))
                    with lock:
                        statuses[r.status] = statuses.get(r.status, 0) + 1
                        state["done"] += 1
                        if not ok:
                            failures.append(f"#{i}: {r.status} {data[:200]!r}")
                    if r.getheader("Connection", "").lower() == "close":
                        conn.close()
                        conn = None
                except (OSError, http.client.HTTPException, ValueError) as e:
                    with lock:
                        state["done"] += 1
                        failures.append(f"#{i}: {type(e).__name__}: {e}")
                    if conn:
                        conn.close()
                    conn = None
            if conn:
                conn.close()

        threads = [threading.Thread(target=client, daemon=True) for _ in range(CONCURRENCY)]
        for t in threads:
            t.start()

        # The chaos: once TERM_AT requests are out, SIGTERM instance 1 (graceful drain; stop()
        # waits for its exit and reaps it), start it again on the same port, and wait until
        # haproxy's readiness check has put it back.
        while state["next"] < TERM_AT and time.monotonic() < stop_at:
            time.sleep(0.01)
        victim = self.servers["respawn1"]
        victim_stats = self.haproxy.servers()["respawn1"][1]
        term_t = time.monotonic()
        victim.stop()
        drained_s = time.monotonic() - term_t
        exit_code = victim.proc.returncode
        victim.close()
        del self.servers["respawn1"]
        went_down = self.haproxy.wait_status("respawn1", "DOWN", 10)
        self.start_server("respawn1", ports["respawn1"])
        back_up = self.haproxy.wait_status("respawn1", "UP", 20)
        up_t = time.monotonic()
        sent_when_up = state["next"]
        stats_when_up = self.haproxy.servers()["respawn1"][1]

        for t in threads:
            t.join(max(1.0, stop_at - time.monotonic() + 5))
        wall = time.monotonic() - t0
        final = self.haproxy.server_rows()
        served_after_restart = final["respawn1"][1] - stats_when_up

        print(f"\n{state['done']} requests through haproxy at concurrency {CONCURRENCY} in {wall:.1f} s: "
              f"{len(failures)} failed; statuses {statuses}; respawn1 SIGTERMed after "
              f"{TERM_AT} sent (had served {victim_stats}), exited {exit_code} after {drained_s:.2f} s, "
              f"marked DOWN: {went_down}, back UP {up_t - term_t:.1f} s after SIGTERM with "
              f"{sent_when_up} sent, then served {served_after_restart} more; haproxy totals "
              f"(status, sessions, retries, redispatches) {final}", flush=True)
        self.assertFalse(any(t.is_alive() for t in threads), "clients still running past the budget")
        self.assertEqual(failures, [], f"{len(failures)} failed\n{self.haproxy.log()}")
        self.assertEqual(state["done"], TOTAL)
        self.assertEqual(exit_code, 0, "the SIGTERMed instance did not exit 0 after its drain")
        self.assertTrue(went_down, "haproxy never marked the SIGTERMed instance DOWN")
        self.assertTrue(back_up, f"the restarted instance never came back UP\n{self.haproxy.log()}")
        self.assertGreater(served_after_restart, 0, "the restarted instance got no traffic")


if __name__ == "__main__":
    if not shutil.which("haproxy"):
        print("SKIPPED: haproxy is not installed (apt-get install haproxy; scripts/common.sh "
              "RESPAWN_PACKAGES has it)", flush=True)
        sys.exit(h.SKIP)
    h.main()
