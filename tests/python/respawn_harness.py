"""What the Python tests share (tests/python/, run by ctest through tests/CMakeLists.txt): where
the binaries and models are, a `respawn serve --port 0` started in its own temp dir and always
stopped and reaped by pid, and the skip protocol.

Folders come from the command line ctest gives (--bin-dir, --models-dir, --generated-dir), and
each can be moved with the same environment variables as the C++ integration tests
(tests/integration/harness.hpp): $RESPAWN_TEST_BIN_DIR, $RESPAWN_TEST_MODELS_DIR; the server's
--device is $RESPAWN_TEST_DEVICE, or cpu. A test file calls `main()`: it runs unittest and exits
with SKIP (77) when a package it needs is missing, which ctest reports as skipped
(SKIP_RETURN_CODE): a venv of one's own ($RESPAWN_VENV) gets nothing installed into it.
"""
import argparse
import ctypes
import importlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

SKIP = 77
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Paths:
    bin_dir = os.path.join(ROOT, "build", "bin")
    models_dir = os.path.join(ROOT, "models")
    generated_dir = os.path.join(ROOT, "build", "models-generated")


# The clients talk to 127.0.0.1 only: never through a proxy from the environment.
for _variable in ("NO_PROXY", "no_proxy"):
    os.environ[_variable] = ",".join(filter(None, [os.environ.get(_variable), "127.0.0.1", "localhost"]))


def require(*modules):
    """Imports the named modules, or exits with SKIP saying which is missing."""
    loaded = []
    for name in modules:
        try:
            loaded.append(importlib.import_module(name))
        except ImportError as e:
            print(f"SKIPPED: {name} is not installed in {sys.executable} ({e}); "
                  "scripts/common.sh's respawn_install_test_packages installs it", flush=True)
            sys.exit(SKIP)
    return loaded[0] if len(loaded) == 1 else loaded


def model_path(name: str) -> str:
    return os.path.join(Paths.models_dir, name)


def device() -> str:
    return os.environ.get("RESPAWN_TEST_DEVICE") or "cpu"


def children_of(pid: int):
    """The pids whose parent is pid (the worker, the fork server)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
        except (OSError, ValueError, IndexError):
            pass
    return found


def gone(pid: int) -> bool:
    """True once pid is not running (gone, or a zombie nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def _die_with_parent():
    """In the server's child before exec: SIGKILL it when this test process dies (a ctest
    timeout), so that no server outlives its test."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Server:
    """`respawn serve --port PORT --device DEVICE ARGS` in a fresh temp dir (its cwd, where its
    stderr goes); `url`, `port`, `pid`. PORT is 0 (a free one) unless given: a test that must
    restart an instance on the same port (a load balancer's server line) chooses it. stop() (also on `with` exit) sends SIGTERM, SIGKILLs it
    after 15 s, reaps it, then SIGKILLs any child of it that outlived it (by pid)."""

    def __init__(self, args, env=None, ready_timeout=60, port=0):
        self.dir = tempfile.mkdtemp(prefix="respawn-pytest-")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        argv = [os.path.join(Paths.bin_dir, "respawn"), "serve", "--port", str(port)]
        if "--device" not in args:
            argv += ["--device", device()]
        argv += list(args)
        self.argv = argv
        with open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(argv, cwd=self.dir, stdout=subprocess.PIPE, stderr=stderr,
                                         env={**os.environ, **(env or {})}, text=True,
                                         preexec_fn=_die_with_parent)
        self.pid = self.proc.pid
        self._children = []
        try:
            self.port = self._read_port(30)
            self.url = f"127.0.0.1:{self.port}"
            if ready_timeout and not self.wait_ready(ready_timeout):
                raise RuntimeError(f"not ready within {ready_timeout} s")
        except BaseException as e:
            self.stop()
            log = self.log()
            shutil.rmtree(self.dir, ignore_errors=True)
            raise RuntimeError(f"server did not start: {e}: {' '.join(argv)}\n{log}") from None

    def _read_port(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                if not line:
                    break
                if "listening on" in line:
                    return int(line.strip().rsplit(":", 1)[1])
            elif self.proc.poll() is not None:
                break
        raise RuntimeError(f"no 'listening on' line (exit {self.proc.poll()})")

    def request(self, method: str, target: str, body=None, headers=None, timeout=60):
        """(status, headers, body bytes) of one request; HTTP errors are answers too."""
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(f"http://{self.url}{target}", data=data, method=method,
                                     headers=headers or {})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if self.request("GET", "/v2/health/ready", timeout=5)[0] == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def log(self) -> str:
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()[-20000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc.returncode is None:
            self._children = children_of(self.pid)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        # Its workers die with it (PR_SET_PDEATHSIG); make sure of it.
        deadline = time.monotonic() + 5
        for child in self._children:
            while not gone(child) and time.monotonic() < deadline:
                time.sleep(0.02)
            if not gone(child):
                try:
                    os.kill(child, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._children = []

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def main():
    """Reads the folders from argv (the rest goes to unittest) and runs the file's tests."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--bin-dir")
    parser.add_argument("--models-dir")
    parser.add_argument("--generated-dir")
    args, rest = parser.parse_known_args()
    Paths.bin_dir = os.environ.get("RESPAWN_TEST_BIN_DIR") or args.bin_dir or Paths.bin_dir
    Paths.models_dir = os.environ.get("RESPAWN_TEST_MODELS_DIR") or args.models_dir or Paths.models_dir
    Paths.generated_dir = args.generated_dir or Paths.generated_dir
    unittest.main(module="__main__", argv=[sys.argv[0]] + rest, verbosity=2)
