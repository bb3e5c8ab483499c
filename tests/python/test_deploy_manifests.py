"""The deployment files against the real server: every YAML document under deploy/kubernetes
(PyYAML) and deploy/haproxy/haproxy.cfg.

- Every probe path (httpGet.path of startupProbe, readinessProbe, livenessProbe) and HAProxy's
  `option httpchk` path is GET on a live `respawn serve` (the fake worker, as in the C++
  integration tests' fake_args()) and must answer 200 once it is ready.
- A probe's port is the container's port (its number or its name), and the `--port` of its args.
- Every `--flag` in a respawn container's args is one `respawn serve --help` lists.
- terminationGracePeriodSeconds > drain_timeout_ms / 1000 + the preStop sleep, with
  drain_timeout_ms from the args (--drain-timeout-ms) or else the default in
  common/respawn/policy.hpp.
- The metric the autoscaler reads (respawn_queue_depth) is one /metrics exports.
"""
import glob
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import respawn_harness as h  # noqa: E402

yaml = h.require("yaml")

K8S_DIR = os.path.join(h.ROOT, "deploy", "kubernetes")
HAPROXY_CFG = os.path.join(h.ROOT, "deploy", "haproxy", "haproxy.cfg")
POLICY_HPP = os.path.join(h.ROOT, "common", "respawn", "policy.hpp")
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def documents():
    """[(file name, document)] of every YAML document under deploy/kubernetes."""
    found = []
    files = sorted(glob.glob(os.path.join(K8S_DIR, "**", "*.yaml"), recursive=True)
                   + glob.glob(os.path.join(K8S_DIR, "**", "*.yml"), recursive=True))
    for path in files:
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc is not None:
                    found.append((os.path.relpath(path, h.ROOT), doc))
    return found


def walk(node):
    """Every dict in a document, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def pod_specs(doc):
    """Every dict holding `containers` (a pod spec, a ServingRuntime spec)."""
    return [d for d in walk(doc) if isinstance(d.get("containers"), list)]


def is_respawn(container):
    return any("respawn" in str(part) for part in (container.get("command") or [])[:1]) or \
        "respawn" in str(container.get("image", ""))


def arg_value(args, flag):
    args = [str(a) for a in args or []]
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def default_drain_timeout_ms() -> int:
    with open(POLICY_HPP) as f:
        m = re.search(r"drain_timeout_ms\s*=\s*(\d+)", f.read())
    assert m, f"no drain_timeout_ms default in {POLICY_HPP}"
    return int(m.group(1))


def prestop_sleep_s(container) -> float:
    """Seconds the preStop hook sleeps: exec [.../sleep, N], sh -c 'sleep N', or sleep.seconds."""
    hook = ((container.get("lifecycle") or {}).get("preStop")) or {}
    if "sleep" in hook:
        return float(hook["sleep"]["seconds"])
    command = [str(c) for c in ((hook.get("exec") or {}).get("command") or [])]
    if command and os.path.basename(command[0]) == "sleep":
        return float(command[1])
    m = re.search(r"\bsleep\s+(\d+(?:\.\d+)?)", " ".join(command))
    if m:
        return float(m.group(1))
    if hook:
        raise AssertionError(f"preStop hook whose duration this check cannot read: {hook}")
    return 0.0


def haproxy_check():
    """(method, path, expected status) of deploy/haproxy/haproxy.cfg's health check."""
    with open(HAPROXY_CFG) as f:
        text = f.read()
    m = re.search(r"^\s*option\s+httpchk\s+(\S+)\s+(\S+)", text, re.M)
    assert m, f"{HAPROXY_CFG}: no 'option httpchk METHOD PATH'"
    e = re.search(r"^\s*http-check\s+expect\s+status\s+(\d+)", text, re.M)
    return m.group(1), m.group(2), int(e.group(1)) if e else None


class ManifestTest(unittest.TestCase):
    """The static checks: ports, flags, the grace period arithmetic."""

    @classmethod
    def setUpClass(cls):
        cls.docs = documents()
        cls.help = subprocess.run([os.path.join(h.Paths.bin_dir, "respawn"), "serve", "--help"],
                                  capture_output=True, text=True, timeout=30).stdout

    def respawn_containers(self):
        found = []
        for name, doc in self.docs:
            for spec in pod_specs(doc):
                for c in spec["containers"]:
                    if is_respawn(c):
                        found.append((name, doc, spec, c))
        return found

    def test_there_is_something_to_check(self):
        self.assertTrue(self.docs, f"no YAML under {K8S_DIR}")
        kinds = {doc.get("kind") for _, doc in self.docs}
        for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "InferenceService"):
            self.assertIn(kind, kinds)
        self.assertGreaterEqual(len(self.respawn_containers()), 2)

    def test_every_respawn_container_has_all_three_probes_and_one_gpu(self):
        for name, _, _, c in self.respawn_containers():
            for probe in PROBES:
                self.assertIn("httpGet", c.get(probe) or {}, f"{name}: {c['name']} has no {probe}")
            self.assertEqual(str(c["resources"]["limits"]["nvidia.com/gpu"]), "1", name)

    def test_probe_ports_are_the_container_port(self):
        for name, _, _, c in self.respawn_containers():
            ports = c.get("ports") or []
            self.assertEqual(len(ports), 1, f"{name}: {c['name']}: one container port expected")
            number, port_name = ports[0]["containerPort"], ports[0].get("name")
            self.assertEqual(arg_value(c.get("args"), "--port"), str(number),
                             f"{name}: --port is not containerPort {number}")
            self.assertEqual(arg_value(c.get("args"), "--host"), "0.0.0.0",
                             f"{name}: respawn listens on 127.0.0.1 unless --host 0.0.0.0")
            for probe in PROBES:
                port = c[probe]["httpGet"]["port"]
                self.assertIn(port, (number, port_name), f"{name}: {probe} port {port!r} is not "
                              f"the container's {number} ({port_name})")

    def test_args_are_real_flags(self):
        self.assertIn("--drain-timeout-ms", self.help)
        for name, _, _, c in self.respawn_containers():
            self.assertEqual([str(x) for x in c.get("command", [])][-1:], ["serve"], name)
            for a in c.get("args") or []:
                a = str(a)
                if a.startswith("--"):
                    flag = a.split("=", 1)[0]
                    self.assertRegex(self.help, rf"(^|[\s,]){re.escape(flag)}\b",
                                     f"{name}: {flag} is not a `respawn serve` flag")

    def grace_period_for(self, doc, spec):
        if "terminationGracePeriodSeconds" in spec:
            return spec["terminationGracePeriodSeconds"]
        # A KServe ServingRuntime: the InferenceServices that use it set the grace period.
        if doc.get("kind") in ("ServingRuntime", "ClusterServingRuntime"):
            runtime = doc["metadata"]["name"]
            for _, other in self.docs:
                if other.get("kind") != "InferenceService":
                    continue
                predictor = other["spec"]["predictor"]
                if (predictor.get("model") or {}).get("runtime") == runtime:
                    return predictor.get("terminationGracePeriodSeconds")
        return None

    def test_grace_period_covers_prestop_and_drain(self):
        default = default_drain_timeout_ms()
        for name, doc, spec, c in self.respawn_containers():
            drain = arg_value(c.get("args"), "--drain-timeout-ms")
            drain_ms = int(drain) if drain is not None else default
            sleep = prestop_sleep_s(c)
            self.assertGreater(sleep, 0, f"{name}: {c['name']} has no preStop sleep")
            grace = self.grace_period_for(doc, spec)
            self.assertIsNotNone(grace, f"{name}: no terminationGracePeriodSeconds (the default "
                                        f"30 s is not above {drain_ms / 1000 + sleep} s)")
            self.assertGreater(grace, drain_ms / 1000 + sleep,
                               f"{name}: terminationGracePeriodSeconds {grace} <= drain "
                               f"{drain_ms} ms + preStop {sleep} s")

    def test_haproxy_checks_readiness_for_200(self):
        method, path, status = haproxy_check()
        self.assertEqual((method, status), ("GET", 200))
        self.assertEqual(path, "/v2/health/ready")


class LiveRouterTest(unittest.TestCase):
    """Every probe path against a running `respawn serve` with the fake worker."""

    @classmethod
    def setUpClass(cls):
        cls.server = h.Server(["--worker-bin", os.path.join(h.Paths.bin_dir, "respawn-fake-worker"),
                               "--model", h.model_path("demo.pt")])

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def probe_paths(self):
        paths = {}
        for name, doc in documents():
            for spec in pod_specs(doc):
                for c in spec["containers"]:
                    for probe in PROBES:
                        get = (c.get(probe) or {}).get("httpGet")
                        if get:
                            paths.setdefault(get["path"], []).append(f"{name}: {c['name']}.{probe}")
        _, path, _ = haproxy_check()
        paths.setdefault(path, []).append(os.path.relpath(HAPROXY_CFG, h.ROOT) + ": option httpchk")
        return paths

    def test_every_probe_path_answers_200(self):
        paths = self.probe_paths()
        self.assertGreaterEqual(len(paths), 2)
        for path, users in sorted(paths.items()):
            status, _, body = self.server.request("GET", path, timeout=10)
            self.assertEqual(status, 200, f"GET {path} -> {status} {body[:200]!r}; used by {users}")
            print(f"GET {path}: {status} {body.decode(errors='replace').strip()}  ({len(users)} uses)",
                  flush=True)

    def test_an_unknown_path_is_not_200(self):
        # So that a 200 above means the router knows the path.
        self.assertNotEqual(self.server.request("GET", "/v2/health/nonexistent", timeout=10)[0], 200)

    def test_autoscaler_metric_is_exported(self):
        names = set()
        for _, doc in documents():
            for d in walk(doc):
                metric = d.get("metric")
                if isinstance(metric, dict) and "name" in metric:
                    names.add(metric["name"])
        self.assertIn("respawn_queue_depth", names)
        status, _, body = self.server.request("GET", "/metrics", timeout=10)
        self.assertEqual(status, 200)
        for name in names:
            self.assertRegex(body.decode(), rf"(?m)^{re.escape(name)}(\{{| )", f"/metrics has no {name}")


if __name__ == "__main__":
    h.main()
