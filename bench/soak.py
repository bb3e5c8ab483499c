#!/usr/bin/env python3
"""Chaos soak under worker SIGKILL/SIGSTOP: fails on lost requests, fd growth or zombies.

A bounded, loopback-only mixed load against a server it starts itself.

  scripts/python bench/soak.py [--requests 2000] [--concurrency 8] [--kill-every 2s|50r]
                                 [--seed 1] [--binary-dir build/bin] [--ci] [--json [FILE]]

It copies respawn, respawn-worker (and respawn-fake-worker, if there) from --binary-dir into
a temp dir, so that a rebuild during the run changes nothing, and starts
`respawn serve --port 0` there with the bundled demo model and knobs that make recovery quick
(hang_timeout_ms 1000, header/read timeouts 2000 ms, ...; see server_flags()). Then:

  warm-up   every route in every connection mode, and one worker SIGKILL, so that anything
            the supervisor opens lazily is open; then it reads the supervisor's RSS and open
            descriptors (/proc/PID/status, /proc/PID/fd) as the baseline
  load      --requests requests from --concurrency client threads (raw sockets), each request
            drawn from --seed: route (generate, generate_stream, /v1/chat/completions and
            /v1/completions plain and streamed, infer, model metadata, and a few invalid bodies
            that must get a JSON 400), connection mode (keep-alive, `Connection: close`,
            HTTP/1.0), prompt (one of a few identical requests, or a unique one)
  chaos     every --kill-every (seconds, or completed requests with an `r` suffix; +-50%
            jitter) the current worker, read from GET /admin/workers, gets SIGKILL or SIGSTOP;
            a stopped worker gets SIGCONT after 0.1-2.5 x hang_timeout_ms, by which time the
            hang detector has often killed it. Only pids the server reported (admin/workers,
            X-Respawn-Worker-Pid) whose parent is the server are ever signalled
  slowloris --slowloris connections send a request's headers one byte every 0.25 s, over and
            over, for the whole run; each must be closed by the server within
            header_timeout_ms (+ slack) and must not hold up anyone else
  after     waits until the server is quiescent (worker ready, nothing queued or in flight),
            lets the descriptors settle (up to 2 x header_timeout_ms + 3 s), reads RSS and
            descriptors again, looks for zombies and strays, stops the server (SIGTERM, then
            SIGKILL) and checks that no worker outlived it

A request is lost when it got no answer (reset, early EOF, timeout), or an answer that is
neither a 200 (with the body its route promises; a stream must end with its final event, or an
error event) nor a JSON error body ({"error": "..."} or OpenAI's {"error": {"message": ...}}).

Exit status: 0 when every check passed; 1 on any lost request, any descriptor growth (exact:
the count after must not exceed the baseline), any zombie or stray process, a slowloris
connection the server did not cut in time, or a server that did not stop cleanly; 2 when it
could not run (no binaries, the server did not start). The server is always stopped and reaped
(by pid), on Ctrl-C and errors too. Stdlib only.
"""
import argparse
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "demo.pt")
HOST = "127.0.0.1"

HANG_TIMEOUT_MS = 1000
HEADER_TIMEOUT_MS = 2000
CLIENT_TIMEOUT_S = 60.0  # a request not answered in this long is lost (server deadline: 30 s)

# Identical requests: the same bytes every time, so they share the poison fingerprint.
IDENTICAL_PROMPTS = ["The supervisor", "Hello", "A worker that hangs", "respawn keeps"]


class Failed(Exception):
    """The soak could not run (exit 2)."""


# --- /proc ----------------------------------------------------------------------------------

def proc_stat(pid):
    """(state, ppid) of pid, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[1])
    except (OSError, ValueError, IndexError):
        return None


def cmdline(pid) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def is_live_worker(pid) -> bool:
    st = proc_stat(pid)
    return st is not None and st[0] != "Z" and b"respawn-worker" in cmdline(pid)


def children_of(pid):
    """{child pid: state} of pid's children."""
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st and st[1] == pid:
                out[int(name)] = st[0]
    return out


def rss_kib(pid) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def fds(pid) -> dict:
    """{kind: count} of pid's open descriptors: socket, pipe, anon_inode:[eventpoll], file..."""
    kinds = {}
    d = f"/proc/{pid}/fd"
    for name in os.listdir(d):
        try:
            target = os.readlink(os.path.join(d, name))
        except OSError:
            continue  # closed while we looked
        kind = re.sub(r":\[\d+\]$", "", target)
        if kind.startswith("/"):
            kind = "file " + kind
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


# --- a small HTTP client on raw sockets (so that HTTP/1.0 and framing are exactly ours) -----

class NoAnswer(Exception):
    pass


class Response:
    def __init__(self, version, status, headers, body):
        self.version, self.status, self.headers, self.body = version, status, headers, body


def read_response(sock, deadline):
    """Reads one response from sock; NoAnswer on EOF, reset or timeout before it is complete."""
    buf = bytearray()

    def fill():
        left = deadline - time.monotonic()
        if left <= 0:
            raise NoAnswer(f"no complete answer within {CLIENT_TIMEOUT_S:.0f} s")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise NoAnswer(f"no complete answer within {CLIENT_TIMEOUT_S:.0f} s")
        except OSError as e:
            raise NoAnswer(f"{type(e).__name__}: {e.strerror or e}")
        if not chunk:
            return False
        buf.extend(chunk)
        return True

    while b"\r\n\r\n" not in buf:
        if not fill():
            raise NoAnswer("connection closed before a response" if not buf
                           else "connection closed inside the response headers")
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    buf[:] = rest
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/(\d\.\d) (\d{3})", lines[0])
    if not m:
        raise NoAnswer(f"not an HTTP status line: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            while b"\r\n" not in buf:
                if not fill():
                    raise NoAnswer("connection closed inside a chunked body")
            size_line, _, rest = bytes(buf).partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            buf[:] = rest
            if size == 0:
                while b"\r\n" not in buf:  # (no trailers are expected) the final CRLF
                    if not fill():
                        raise NoAnswer("connection closed after the last chunk")
                break
            while len(buf) < size + 2:
                if not fill():
                    raise NoAnswer("connection closed inside a chunk")
            body += buf[:size]
            buf[:] = buf[size + 2:]
        body = bytes(body)
    elif "content-length" in headers:
        n = int(headers["content-length"])
        while len(buf) < n:
            if not fill():
                raise NoAnswer(f"connection closed after {len(buf)} of {n} body bytes")
        body = bytes(buf[:n])
    else:
        while fill():
            pass
        body = bytes(buf)
    return Response(m.group(1), int(m.group(2)), headers, body)


def build_request(method, path, body, version="1.1", close=False, extra=None) -> bytes:
    lines = [f"{method} {path} HTTP/{version}", f"Host: {HOST}"]
    if close:
        lines.append("Connection: close")
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += list(extra or [])
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def simple_request(port, method, path, body=None, timeout=10.0):
    """One request on a fresh `Connection: close` connection: Response (or NoAnswer)."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(build_request(method, path, body, close=True))
        return read_response(s, time.monotonic() + timeout)


def get_json(port, path, timeout=10.0):
    r = simple_request(port, "GET", path, timeout=timeout)
    return r.status, json.loads(r.body or b"null")


# --- what a request is, and what a good answer to it looks like -----------------------------

ROUTES = [  # (name, weight)
    ("generate", 26), ("generate_stream", 14), ("chat", 12), ("chat_stream", 5),
    ("completions", 10), ("completions_stream", 5), ("infer", 12), ("metadata", 4),
    ("bad_json", 6), ("bad_params", 6),
]
MODES = [("keep-alive", 50), ("close", 30), ("http1.0", 20)]


def weighted(rng, table):
    total = sum(w for _, w in table)
    x = rng.uniform(0, total)
    for name, w in table:
        x -= w
        if x <= 0:
            return name
    return table[-1][0]


def make_request(seed, i):
    """Request i of the run: (route, mode, identical?, method, path, body)."""
    rng = random.Random(seed * 1_000_003 + i)
    route, mode = weighted(rng, ROUTES), weighted(rng, MODES)
    identical = rng.random() < 0.5
    if identical:
        k = rng.randrange(len(IDENTICAL_PROMPTS))
        prompt, tokens = IDENTICAL_PROMPTS[k], 12
    else:
        prompt, tokens = f"req {i} {rng.getrandbits(32):08x}: the worker", rng.randint(4, 24)
    stream = route.endswith("_stream")
    if route in ("generate", "generate_stream"):
        path = "/v2/models/demo/" + route
        body = {"text_input": prompt, "parameters": {"max_tokens": tokens}}
    elif route.startswith("chat"):
        path = "/v1/chat/completions"
        body = {"model": "demo", "messages": [{"role": "user", "content": prompt}],
                "max_tokens": tokens, "temperature": 0}
        if stream:
            body["stream"] = True
    elif route.startswith("completions"):
        path = "/v1/completions"
        body = {"model": "demo", "prompt": prompt, "max_tokens": tokens, "temperature": 0}
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
    elif route == "infer":
        path = "/v2/models/demo/infer"
        ids = list(prompt.encode()[:8])
        body = {"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [1, len(ids)],
                            "data": ids}]}
    elif route == "metadata":
        return route, mode, identical, "GET", "/v2/models/demo", None
    elif route == "bad_json":
        return (route, mode, identical, "POST", "/v2/models/demo/generate",
                b'{"text_input": "unterminated')
    else:  # bad_params: a 400 found by the supervisor's validation
        path = rng.choice(["/v2/models/demo/generate", "/v1/completions"])
        body = {"text_input": prompt, "prompt": prompt, "max_tokens": 0}
    return route, mode, identical, "POST", path, json.dumps(body).encode()


def judge(route, r):
    """'ok', 'error' (a JSON error that says why) or 'lost: <why>' for a response."""
    if r.status != 200:
        try:
            body = json.loads(r.body)
        except ValueError:
            return f"lost: {r.status} with a body that is not JSON: {r.body[:120]!r}"
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict):
            err = err.get("message")
        if isinstance(err, str) and err:
            return "error"
        return f"lost: {r.status} without an error message: {r.body[:120]!r}"
    if route.endswith("_stream"):
        events = [ln[6:] for ln in r.body.decode("utf-8", "replace").split("\n")
                  if ln.startswith("data: ")]
        try:
            if route.startswith("generate"):
                last = json.loads(events[-1]) if events else {}
                if "finish_reason" in last:
                    return "ok"
                if last.get("error"):
                    return "error"
            else:
                if events and events[-1] == "[DONE]":
                    last = json.loads(events[-2]) if len(events) > 1 else {}
                    return "error" if "error" in last else "ok"
        except ValueError:
            return f"lost: a stream event that is not JSON: {events[-1][:120]!r}"
        return f"lost: 200 stream cut before its final event ({len(events)} events)"
    key = {"generate": "text_output", "chat": "choices", "completions": "choices",
           "infer": "outputs", "metadata": "name"}.get(route)
    try:
        body = json.loads(r.body)
    except ValueError:
        return f"lost: 200 with a body that is not JSON: {r.body[:120]!r}"
    if not isinstance(body, dict) or key not in body:
        return f"lost: 200 without '{key}': {r.body[:120]!r}"
    return "ok"


def error_text(r) -> str:
    """The reason in a JSON error answer (digits as N, so that messages group)."""
    try:
        err = json.loads(r.body).get("error")
        if isinstance(err, dict):
            err = err.get("message")
        return re.sub(r"\d+", "N", str(err))[:110]
    except (ValueError, AttributeError):
        return "?"


def stream_error_text(r) -> str:
    for ln in reversed(r.body.decode("utf-8", "replace").split("\n")):
        if ln.startswith("data: {"):
            try:
                err = json.loads(ln[6:]).get("error")
            except ValueError:
                continue
            if isinstance(err, dict):
                err = err.get("message")
            if err:
                return "stream error event: " + re.sub(r"\d+", "N", str(err))[:90]
    return "stream error event"


# --- the server -----------------------------------------------------------------------------

def server_flags(hang_ms):
    return [
        "--host", HOST, "--port", "0", "--model", MODEL,
        "--hang-timeout-ms", str(hang_ms),          # SIGSTOPped workers are found in ~1 s
        "--header-timeout-ms", str(HEADER_TIMEOUT_MS),  # slowloris cut in 2 s
        "--read-timeout-ms", str(HEADER_TIMEOUT_MS),
        "--request-timeout-ms", "30000",
        "--restart-backoff-ms", "50", "--restart-backoff-max-ms", "1000",
        # A kill lands on a ready worker only, so the breaker counts nothing in the normal
        # case; if it opens anyway, a short cooldown keeps the run bounded.
        "--crash-loop-cooldown-s", "2",
        "--drain-timeout-ms", "10000",
        "--max-queue", "256",
    ]


class Server:
    def __init__(self, args, tmp):
        self.args, self.tmp = args, tmp
        self.proc = None
        self.port = None
        self.log_path = os.path.join(tmp, "server.log")
        self.seen_workers = set()
        self.lock = threading.Lock()
        self.exit_status = None
        self.outlived = []
        self.stop_note = ""
        # With --prestart-spare the descriptors are compared with a ready spare each time.
        self.spare = any(a == "--prestart-spare" or a.startswith("--prestart-spare=") and
                         a.split("=", 1)[1].lower() in ("1", "true", "on", "yes")
                         for a in args.server_arg)

    def start(self):
        bindir = os.path.join(self.tmp, "bin")
        os.makedirs(bindir)
        for name in ("respawn", "respawn-worker", "respawn-fake-worker"):
            src = os.path.join(self.args.binary_dir, name)
            if os.path.exists(src):
                shutil.copy2(src, os.path.join(bindir, name))
            elif name != "respawn-fake-worker":
                raise Failed(f"{src} does not exist (build first: ./scripts/test)")
        cmd = [os.path.join(bindir, "respawn"), "serve", *server_flags(self.args.hang_timeout_ms),
               *self.args.server_arg]
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, cwd=self.tmp,
                                     text=True)
        log.close()
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else ""
        if "listening on" not in line:
            raise Failed(f"server did not start ({line!r}, exit {self.proc.poll()}): "
                         f"{' '.join(cmd)}\n{self.log_tail()}")
        self.port = int(line.strip().rsplit(":", 1)[1])

    def log_tail(self, n=15) -> str:
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join("  server log: " + ln for ln in lines[-n:])
        except OSError:
            return ""

    def saw(self, pid):
        if pid:
            with self.lock:
                self.seen_workers.add(int(pid))

    def workers(self, timeout=10.0) -> dict:
        status, body = get_json(self.port, "/admin/workers", timeout)
        if status != 200:
            raise NoAnswer(f"GET /admin/workers: {status}")
        for w in [body, body.get("spare")] + list(body.get("retiring") or []):
            if isinstance(w, dict):
                self.saw(w.get("pid"))
        return body

    def wait_quiescent(self, timeout):
        """The /admin/workers body once the worker is ready and nothing is queued or in
        flight; None if that did not happen within timeout."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                w = self.workers()
                spare = w.get("spare")
                if (w.get("state") == "ready" and not w.get("requests_in_flight")
                        and not w.get("queue_depth") and not w.get("retiring")
                        and (not self.spare or (spare or {}).get("state") == "ready")):
                    return w
            except (OSError, NoAnswer, ValueError):
                pass
            if self.proc.poll() is not None:
                raise Failed(f"the server exited ({self.proc.returncode})\n{self.log_tail()}")
            time.sleep(0.05)
        return None

    def signal_worker(self, pid, sig) -> bool:
        """Sends sig to pid only if the server reported it, is its parent, and it is a live
        respawn-worker."""
        with self.lock:
            known = pid in self.seen_workers
        st = proc_stat(pid)
        if not known or st is None or st[1] != self.proc.pid or not is_live_worker(pid):
            return False
        try:
            os.kill(pid, sig)
            return True
        except ProcessLookupError:
            return False

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            for p in children_of(self.proc.pid):
                if is_live_worker(p):
                    self.saw(p)
            t = time.monotonic()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
                self.stop_note = f"exited {self.proc.returncode} {time.monotonic() - t:.1f} s " \
                                 f"after SIGTERM"
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                self.stop_note = "ignored SIGTERM for 30 s; SIGKILLed"
        self.exit_status = self.proc.returncode
        if self.proc.stdout:
            self.proc.stdout.close()
        # The workers exit with the supervisor; give them a moment, then make sure.
        with self.lock:
            seen = sorted(self.seen_workers)
        end = time.monotonic() + 5
        alive = [p for p in seen if is_live_worker(p)]
        while alive and time.monotonic() < end:
            time.sleep(0.05)
            alive = [p for p in alive if is_live_worker(p)]
        for p in alive:
            self.outlived.append(p)
            try:
                os.kill(p, signal.SIGCONT)
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = None


# --- the parts of the run -------------------------------------------------------------------

class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.by_status = {}      # final status -> count
        self.by_route = {}       # route -> {status: count}
        self.lost = []           # (i, route, mode, why)
        self.errors = {}         # error message (digits as N) -> count
        self.latencies = []
        self.completed = 0
        self.sent = 0
        self.notes = {}          # odd but not lost -> count

    def add(self, i, route, mode, status, verdict, elapsed, r):
        with self.lock:
            self.completed += 1
            key = status if verdict != "error" or status != "200" else "200 (stream error)"
            if verdict.startswith("lost"):
                key = "lost"
                self.lost.append((i, route, mode, verdict[6:]))
            self.by_status[key] = self.by_status.get(key, 0) + 1
            per = self.by_route.setdefault(route, {})
            per[key] = per.get(key, 0) + 1
            if verdict == "error" and r is not None:
                msg = stream_error_text(r) if status == "200" else error_text(r)
                self.errors[f"{status} {msg}"] = self.errors.get(f"{status} {msg}", 0) + 1
            if verdict == "ok":
                self.latencies.append(elapsed)

    def note(self, what):
        with self.lock:
            self.notes[what] = self.notes.get(what, 0) + 1


class Client(threading.Thread):
    """Takes request numbers from a shared counter and sends each in its drawn mode."""

    def __init__(self, srv, args, counter, stats, stop):
        super().__init__(daemon=True)
        self.srv, self.args, self.counter, self.stats, self.stop = srv, args, counter, stats, stop
        self.sock = None
        self.idle_since = 0.0

    def drop(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def server_closes(self) -> bool:
        """After an answer to `Connection: close` or HTTP/1.0: True if the server closes (or
        half-closes) its side within 2 s, as it should right after the answer."""
        end = time.monotonic() + 2
        try:
            while time.monotonic() < end:
                if select.select([self.sock], [], [], end - time.monotonic())[0]:
                    if not self.sock.recv(4096):
                        return True
        except OSError:
            return True  # reset: closed as well
        return False

    def run(self):
        try:
            while not self.stop.is_set():
                i = self.counter.take()
                if i is None:
                    break
                self.one(i)
        finally:
            self.drop()

    def one(self, i, req=None):
        route, mode, _, method, path, body = req or make_request(self.args.seed, i)
        keep = mode == "keep-alive"
        data = build_request(method, path, body, version="1.0" if mode == "http1.0" else "1.1",
                             close=mode == "close")
        if keep and self.sock is not None:
            # A keep-alive connection idle for long could be closed by the server's idle limit
            # (header_timeout_ms) as we send on it; real clients retry that, we avoid it.
            readable = select.select([self.sock], [], [], 0)[0]
            if readable or time.monotonic() - self.idle_since > HEADER_TIMEOUT_MS / 2000:
                self.drop()
        if not keep:
            self.drop()
        t = time.monotonic()
        r, verdict = None, None
        try:
            if self.sock is None:
                self.sock = socket.create_connection((HOST, self.srv.port), timeout=10)
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock.sendall(data)
            r = read_response(self.sock, t + CLIENT_TIMEOUT_S)
        except NoAnswer as e:
            verdict = f"lost: no answer ({e})"
        except OSError as e:
            verdict = f"lost: no answer ({type(e).__name__}: {e.strerror or e})"
        elapsed = time.monotonic() - t
        if r is not None:
            pid = r.headers.get("x-respawn-worker-pid")
            if pid and pid.isdigit():
                self.srv.saw(int(pid))
            verdict = judge(route, r)
            if mode == "http1.0" and "chunked" in r.headers.get("transfer-encoding", ""):
                self.stats.note("chunked transfer encoding sent to an HTTP/1.0 client")
            if mode == "http1.0" and r.version != "1.0":
                self.stats.note(f"HTTP/{r.version} response to an HTTP/1.0 request")
            if mode == "close" and "close" not in r.headers.get("connection", "").lower():
                self.stats.note("no `Connection: close` in the answer to one")
            if not keep and not self.server_closes():
                self.stats.note(f"connection not closed by the server within 2 s of the "
                                f"answer ({mode})")
        keep_open = (r is not None and keep and r.version == "1.1"
                     and "close" not in r.headers.get("connection", "").lower())
        if keep_open:
            self.idle_since = time.monotonic()
        else:
            self.drop()
        self.stats.add(i, route, mode, str(r.status) if r else "no answer", verdict, elapsed, r)


class Counter:
    def __init__(self, n, deadline):
        self.n, self.deadline, self.next = n, deadline, 0
        self.lock = threading.Lock()

    def take(self):
        with self.lock:
            if self.next >= self.n or time.monotonic() > self.deadline:
                return None
            self.next += 1
            return self.next - 1


class Killer(threading.Thread):
    """SIGKILLs or SIGSTOPs (then SIGCONTs) the current worker every --kill-every."""

    def __init__(self, srv, args, stats, stop):
        super().__init__(daemon=True)
        self.srv, self.args, self.stats, self.stop = srv, args, stats, stop
        self.rng = random.Random(args.seed ^ 0x5EED)
        self.events = []     # (t, pid, what)
        self.stopped = set()  # pids we SIGSTOPped and have not SIGCONTed yet
        self.errors = []

    def wait_turn(self):
        spec = self.args.kill_every
        if spec.endswith("r"):
            target = self.stats.completed + max(1, round(int(spec[:-1]) *
                                                        self.rng.uniform(0.5, 1.5)))
            while self.stats.completed < target and not self.stop.is_set():
                time.sleep(0.005)
        else:
            self.stop.wait(float(spec.rstrip("s")) * self.rng.uniform(0.5, 1.5))
        return not self.stop.is_set()

    def run(self):
        try:
            while self.wait_turn():
                try:
                    w = self.srv.workers()
                except (OSError, NoAnswer, ValueError) as e:
                    self.errors.append(repr(e))
                    continue
                pid = int(w.get("pid") or 0)
                if not pid or w.get("state") not in ("ready", "busy"):
                    continue  # still loading: killing it would count for the breaker
                if self.rng.random() < self.args.stop_fraction:
                    self.sigstop(pid)
                elif self.srv.signal_worker(pid, signal.SIGKILL):
                    self.events.append((time.monotonic(), pid, "SIGKILL"))
        finally:
            self.resume_all()

    def sigstop(self, pid):
        if not self.srv.signal_worker(pid, signal.SIGSTOP):
            return
        self.stopped.add(pid)
        hold = self.rng.uniform(0.1, 2.5) * self.args.hang_timeout_ms / 1000
        self.stop.wait(hold)
        resumed = self.resume(pid)
        self.events.append((time.monotonic(), pid, f"SIGSTOP {hold:.2f} s, then " +
                            ("SIGCONT" if resumed else "gone (hang detector)")))

    def resume(self, pid) -> bool:
        self.stopped.discard(pid)
        return self.srv.signal_worker(pid, signal.SIGCONT)

    def resume_all(self):
        for pid in list(self.stopped):
            self.resume(pid)


class Slowloris(threading.Thread):
    """Sends a request's headers one byte every `gap` s, on one connection after another."""

    HEAD = (b"POST /v2/models/demo/generate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n")

    def __init__(self, port, stop, gap=0.25):
        super().__init__(daemon=True)
        self.port, self.stop, self.gap = port, stop, gap
        self.cuts = []       # seconds from connect to the server's close
        self.answers = []    # anything the server sent before closing
        self.not_cut = []    # seconds a connection stayed open past the limit
        self.errors = []

    def run(self):
        limit = HEADER_TIMEOUT_MS / 1000
        while not self.stop.is_set():
            try:
                s = socket.create_connection((HOST, self.port), timeout=5)
            except OSError as e:
                self.errors.append(repr(e))
                self.stop.wait(0.5)
                continue
            t = time.monotonic()
            got = b""
            closed = False
            with s:
                for i in range(len(self.HEAD)):  # a stop lets this connection finish
                    try:
                        s.send(self.HEAD[i:i + 1])
                    except OSError:
                        closed = True
                        break
                    r, _, _ = select.select([s], [], [], self.gap)
                    if r:
                        try:
                            chunk = s.recv(4096)
                        except OSError:
                            chunk = b""
                        if not chunk:
                            closed = True
                            break
                        got += chunk
                    if time.monotonic() - t > 3 * limit + 5:
                        break
            elapsed = time.monotonic() - t
            if closed:
                self.cuts.append(elapsed)
                if got:
                    self.answers.append(got[:120])
            else:
                self.not_cut.append(elapsed)


class Monitor(threading.Thread):
    """Polls /admin/workers (to learn every worker pid) and times /v2/health/live."""

    def __init__(self, srv, stop):
        super().__init__(daemon=True)
        self.srv, self.stop = srv, stop
        self.live_ms = []
        self.failures = []

    def run(self):
        while not self.stop.wait(0.25):
            try:
                self.srv.workers()
                t = time.monotonic()
                r = simple_request(self.srv.port, "GET", "/v2/health/live")
                self.live_ms.append((time.monotonic() - t) * 1000)
                if r.status != 200:
                    self.failures.append(f"/v2/health/live: {r.status}")
            except (OSError, NoAnswer, ValueError) as e:
                self.failures.append(f"{type(e).__name__}: {e}")


def warm_up(srv, args):
    """Every route in every mode once, then one worker SIGKILL and recovery."""
    stats = Stats()
    c = Client(srv, args, Counter(0, 0), stats, threading.Event())
    for route, _ in ROUTES:
        for mode, _ in MODES:
            for i in range(10_000):  # the first request of this route and mode
                req = make_request(args.seed + 7919, i)
                if req[0] == route and req[1] == mode:
                    c.one(i, req)
                    break
    c.drop()
    w = srv.wait_quiescent(30)
    if w is None:
        raise Failed("no ready worker after the warm-up requests")
    if not srv.signal_worker(int(w["pid"]), signal.SIGKILL):
        raise Failed(f"could not SIGKILL worker {w['pid']} in the warm-up")
    deadline = time.monotonic() + 30
    while True:
        w2 = srv.wait_quiescent(5)
        if w2 and w2["pid"] != w["pid"]:
            break
        if time.monotonic() > deadline:
            raise Failed("no new ready worker within 30 s of the warm-up kill")
    c.one(0)
    c.drop()
    if stats.lost:
        print(f"note: lost in the warm-up: {stats.lost}", file=sys.stderr)


def settle_fds(pid, target, max_s, hold_s):
    """Polls pid's descriptors until their count is at most target (None: any) and has not
    changed for hold_s, or max_s passes; returns (kinds, seconds waited)."""
    t = time.monotonic()
    last, since = None, t
    while True:
        kinds = fds(pid)
        n = sum(kinds.values())
        now = time.monotonic()
        if n != last:
            last, since = n, now
        if (target is None or n <= target) and now - since >= hold_s:
            return kinds, now - t
        if now - t > max_s:
            return kinds, now - t
        time.sleep(0.1)


def fmt_kinds(kinds):
    return ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else float("nan")


def run(args, out):
    tmp = tempfile.mkdtemp(prefix="respawn-soak-")
    srv = Server(args, tmp)
    summary = {"config": {k: v for k, v in vars(args).items() if k != "json"}}
    problems = []
    t_start = time.monotonic()
    stop_load = threading.Event()
    stop_chaos = threading.Event()
    killer = None
    try:
        srv.start()
        if srv.wait_quiescent(60) is None:
            raise Failed(f"no ready worker within 60 s\n{srv.log_tail()}")
        warm_up(srv, args)
        w = srv.wait_quiescent(30)
        if w is None:
            raise Failed("not quiescent after the warm-up")
        spid = srv.proc.pid
        before_kinds, _ = settle_fds(spid, None, 2 * HEADER_TIMEOUT_MS / 1000 + 3, 1.0)
        before_fds = sum(before_kinds.values())
        before_rss = rss_kib(spid)
        print(f"server pid {spid}, port {srv.port}, worker {w['pid']}; baseline: "
              f"{before_fds} fds ({fmt_kinds(before_kinds)}), RSS {before_rss / 1024:.1f} MiB",
              file=out, flush=True)

        stats = Stats()
        counter = Counter(args.requests, time.monotonic() + args.time_limit)
        monitor = Monitor(srv, stop_chaos)
        killer = Killer(srv, args, stats, stop_chaos) if args.kill_every not in ("0", "0s", "0r") \
            else None
        lorises = [Slowloris(srv.port, stop_chaos) for _ in range(args.slowloris)]
        clients = [Client(srv, args, counter, stats, stop_load) for _ in range(args.concurrency)]
        t_load = time.monotonic()
        for th in [monitor, *lorises, *clients] + ([killer] if killer else []):
            th.start()
        last = t_load
        while any(c.is_alive() for c in clients):
            time.sleep(0.2)
            if time.monotonic() - last >= 10:
                last = time.monotonic()
                print(f"  {stats.completed}/{args.requests} done, {len(stats.lost)} lost, "
                      f"{len(killer.events) if killer else 0} signals, "
                      f"{time.monotonic() - t_load:.0f} s", file=out, flush=True)
        load_s = time.monotonic() - t_load
        stop_chaos.set()
        for th in [monitor, *lorises] + ([killer] if killer else []):
            th.join(timeout=15)

        w = srv.wait_quiescent(20)
        if w is None:
            problems.append("the server was not quiescent (worker ready, nothing queued or in "
                            "flight) within 20 s of the end of the load")
            w = srv.workers()
        after_kinds, settle_s = settle_fds(spid, before_fds, 2 * HEADER_TIMEOUT_MS / 1000 + 3, 0.5)
        after_fds = sum(after_kinds.values())
        after_rss = rss_kib(spid)

        # Zombies: the supervisor's children in state Z, twice 0.5 s apart (a child that has
        # just died is a zombie until the supervisor reaps it).
        z1 = {p for p, s in children_of(spid).items() if s == "Z"}
        time.sleep(0.5)
        kids = children_of(spid)
        zombies = sorted(p for p, s in kids.items() if s == "Z" and p in z1)
        keep = {int(w.get("pid") or 0)}
        for other in ("spare", "fork_server"):  # the fork server is the supervisor's child too
            if isinstance(w.get(other), dict):
                keep.add(int(w[other].get("pid") or 0))
        strays = sorted(p for p, s in kids.items() if s != "Z" and p not in keep)
        with srv.lock:
            seen = set(srv.seen_workers)
        stray_workers = sorted(p for p in seen - keep - set(strays) if is_live_worker(p))
        stray_desc = [f"{p} ({(proc_stat(p) or ('?', '?'))[0]}, parent "
                      f"{(proc_stat(p) or ('?', '?'))[1]})" for p in strays + stray_workers]
        try:
            metrics_text = simple_request(srv.port, "GET", "/metrics").body.decode()
        except (OSError, NoAnswer):
            metrics_text = ""
        metrics = {}
        for line in metrics_text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                metrics[name] = float(value)
    finally:
        stop_load.set()  # on an error or Ctrl-C: no new requests, no more signals
        stop_chaos.set()
        if killer is not None:
            killer.resume_all()
        srv.stop()
        shutil.rmtree(os.path.join(tmp, "bin"), ignore_errors=True)
    total_s = time.monotonic() - t_start

    # --- report -------------------------------------------------------------------------
    def m(name):
        return int(metrics.get(name, 0))

    recycles = {k.split('"')[1]: int(v) for k, v in metrics.items()
                if k.startswith("respawn_worker_recycles_total{")}
    signals = {}
    for _, _, what in (killer.events if killer else []):
        key = "SIGKILL" if what == "SIGKILL" else ("SIGSTOP+SIGCONT" if what.endswith("SIGCONT")
                                                   else "SIGSTOP, killed by the hang detector")
        signals[key] = signals.get(key, 0) + 1
    cuts = [c for s in lorises for c in s.cuts]
    not_cut = [c for s in lorises for c in s.not_cut]
    late_cuts = [c for c in cuts if c > HEADER_TIMEOUT_MS / 1000 + args.slowloris_slack]
    loris_answers = [a for s in lorises for a in s.answers]
    lat = stats.latencies
    fd_growth = after_fds - before_fds

    print(f"\n### Soak: {stats.completed} requests at concurrency {args.concurrency}, seed "
          f"{args.seed}, kill every {args.kill_every}, {args.slowloris} slowloris\n", file=out)
    print("| final status | requests |\n| --- | --- |", file=out)
    for k, v in sorted(stats.by_status.items()):
        print(f"| {k} | {v} |", file=out)
    print("\n| route | " + " | ".join(sorted(stats.by_status)) + " |", file=out)
    print("|" + " --- |" * (len(stats.by_status) + 1), file=out)
    for route, per in sorted(stats.by_route.items()):
        print(f"| {route} | " + " | ".join(str(per.get(k, 0)) for k in sorted(stats.by_status))
              + " |", file=out)
    print("\nerror answers (JSON, with a reason), by message:", file=out)
    for msg, n in sorted(stats.errors.items(), key=lambda kv: -kv[1]):
        print(f"  {n:6d}  {msg}", file=out)
    for what, n in sorted(stats.notes.items()):
        print(f"note: {n} x {what}", file=out)
    print(f"\nlatency of good answers: p50 {pct(lat, 0.5) * 1000:.0f} ms, p99 "
          f"{pct(lat, 0.99) * 1000:.0f} ms, max {max(lat, default=0) * 1000:.0f} ms; "
          f"/v2/health/live during the run: max {max(monitor.live_ms, default=0):.0f} ms "
          f"({len(monitor.failures)} failed)", file=out)
    print(f"signals: {', '.join(f'{k} {v}' for k, v in sorted(signals.items())) or 'none'}; "
          f"recycles: {', '.join(f'{k} {v}' for k, v in sorted(recycles.items())) or 'none'}; "
          f"worker starts {m('respawn_worker_starts_total')}, replayed "
          f"{m('respawn_requests_replayed_total')}, quarantined "
          f"{m('respawn_requests_quarantined_total')}, workers seen {len(seen)}", file=out)
    print(f"slowloris: {len(cuts)} connections cut, after "
          + (f"{min(cuts):.2f}/{statistics.median(cuts):.2f}/{max(cuts):.2f} s (min/median/max)"
             if cuts else "-")
          + f" (header_timeout_ms {HEADER_TIMEOUT_MS}); {len(not_cut)} not cut; "
          f"{len(loris_answers)} got bytes back", file=out)
    print(f"supervisor RSS: {before_rss / 1024:.1f} MiB before, {after_rss / 1024:.1f} MiB after",
          file=out)
    print(f"supervisor fds: {before_fds} before, {after_fds} after ({fd_growth:+d}, after "
          f"{settle_s:.1f} s settling)", file=out)
    if fd_growth:
        print(f"  before: {fmt_kinds(before_kinds)}\n  after:  {fmt_kinds(after_kinds)}",
              file=out)
    print(f"zombies: {len(zombies)} {zombies if zombies else ''}; stray processes: "
          f"{len(stray_desc)} {stray_desc if stray_desc else ''}", file=out)
    print(f"server stop: {srv.stop_note or f'exit {srv.exit_status}'}; workers that outlived "
          f"it: {srv.outlived or 0}", file=out)
    print(f"time: load {load_s:.1f} s, whole run {total_s:.1f} s", file=out)

    if stats.lost:
        problems.append(f"{len(stats.lost)} lost requests")
        for i, route, mode, why in stats.lost[:15]:
            print(f"  LOST: request {i} ({route}, {mode}): {why}", file=out)
    if fd_growth > 0:
        problems.append(f"descriptor growth: {before_fds} -> {after_fds} fds")
    if zombies:
        problems.append(f"zombie children: {zombies}")
    if stray_desc:
        problems.append(f"stray processes (not the current worker, spare or fork server): "
                        f"{stray_desc}")
    if not_cut:
        problems.append(f"{len(not_cut)} slowloris connections not cut by the header timeout")
    if late_cuts:
        problems.append(f"{len(late_cuts)} slowloris connections cut late (max "
                        f"{max(late_cuts):.2f} s)")
    if args.slowloris and not cuts:
        problems.append("no slowloris connection was cut during the run")
    if srv.exit_status != 0:
        problems.append(f"server stop: {srv.stop_note or srv.exit_status}")
    if srv.outlived:
        problems.append(f"workers outlived the server: {srv.outlived}")
    if stats.completed < args.requests:
        print(f"note: the {args.time_limit:.0f} s time limit stopped the load after "
              f"{stats.completed} of {args.requests} requests", file=out)
    for p in problems:
        print(f"FAIL: {p}", file=out)
    print("PASS" if not problems else "FAILED", file=out)
    shutil.rmtree(tmp, ignore_errors=True) if not problems else \
        print(f"(server log kept: {srv.log_path})", file=out)

    summary.update({
        "passed": not problems, "problems": problems,
        "requests": {"planned": args.requests, "completed": stats.completed,
                     "by_status": stats.by_status, "by_route": stats.by_route,
                     "lost": len(stats.lost),
                     "lost_examples": [{"i": i, "route": r, "mode": md, "why": why}
                                       for i, r, md, why in stats.lost[:50]],
                     "errors": stats.errors, "notes": stats.notes},
        "latency_ms": {"p50": pct(lat, 0.5) * 1000, "p99": pct(lat, 0.99) * 1000,
                       "max": max(lat, default=0) * 1000},
        "health_live_max_ms": max(monitor.live_ms, default=0),
        "signals": signals, "recycles": recycles,
        "worker_starts": m("respawn_worker_starts_total"),
        "replayed": m("respawn_requests_replayed_total"),
        "quarantined": m("respawn_requests_quarantined_total"),
        "slowloris": {"cut": len(cuts), "not_cut": len(not_cut), "late": len(late_cuts),
                      "cut_s": {"min": min(cuts, default=0), "max": max(cuts, default=0)},
                      "answered": len(loris_answers)},
        "supervisor": {"rss_kib_before": before_rss, "rss_kib_after": after_rss,
                       "fds_before": before_fds, "fds_after": after_fds,
                       "fd_kinds_before": before_kinds, "fd_kinds_after": after_kinds},
        "zombies": zombies, "strays": stray_desc, "outlived": srv.outlived,
        "server_exit": srv.exit_status,
        "seconds": {"load": load_s, "total": total_s},
    })
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--kill-every", default="2s",
                    help="seconds between worker signals ('2' or '2s'), or completed requests "
                         "with an 'r' suffix ('50r'); +-50%% jitter; 0 = no signals")
    ap.add_argument("--stop-fraction", type=float, default=0.4,
                    help="share of the signals that are SIGSTOP (then SIGCONT), not SIGKILL")
    ap.add_argument("--slowloris", type=int, default=3, help="slowloris connections at a time")
    ap.add_argument("--slowloris-slack", type=float, default=2.0,
                    help="seconds past header_timeout_ms a slowloris cut may take (busy CPUs)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--binary-dir", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--hang-timeout-ms", type=int, default=HANG_TIMEOUT_MS)
    ap.add_argument("--time-limit", type=float, default=900,
                    help="stop sending new requests after this many seconds")
    ap.add_argument("--server-arg", action="append", default=[],
                    help="an extra argument for `respawn serve` (repeat; e.g. "
                         "--server-arg=--prestart-spare)")
    ap.add_argument("--ci", action="store_true",
                    help="the short CI preset (under 90 s on 2 cores): 3000 requests, "
                         "concurrency 8, a signal every 1.5 s, 2 slowloris, at most 50 s of load")
    ap.add_argument("--json", nargs="?", const="-", metavar="FILE",
                    help="write a machine-readable summary to FILE ('-' or nothing: stdout, "
                         "and the human report goes to stderr)")
    args = ap.parse_args()
    if args.ci:
        args.requests, args.concurrency, args.kill_every = 3000, 8, "1.5s"
        args.slowloris, args.time_limit = 2, 50
    if not re.fullmatch(r"\d+(\.\d+)?s?|\d+r", args.kill_every):
        ap.error("--kill-every: seconds ('2', '2s', '0.5') or requests ('50r')")
    out = sys.stderr if args.json == "-" else sys.stdout

    # SIGTERM (CI cancelling the job) unwinds like Ctrl-C, so the server is always stopped.
    def on_term(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with it ignored
    try:
        summary = run(args, out)
    except Failed as e:
        print(f"soak could not run: {e}", file=out)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the server was stopped", file=out)
        return 130
    if args.json:
        text = json.dumps(summary, indent=1, sort_keys=True)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
