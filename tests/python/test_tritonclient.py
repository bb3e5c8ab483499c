#!/usr/bin/env python3
"""Triton's own Python client (tritonclient[http], sync and asyncio) against the real respawn,
used the way Triton's client examples use it (triton-inference-server/client,
src/python/examples/simple_http_infer_client.py and simple_http_aio_infer_client.py): health,
metadata, inference with JSON tensors and with the binary tensor data extension, model
versions, the statistics extension, system shared memory, and Triton's `timeout`
(microseconds) and `priority`.

  python tests/python/test_tritonclient.py [--bin-dir build/bin] [--models-dir models]
                                           [--generated-dir build/models-generated]
                                           [unittest args, e.g. ClassifierTest -k binary]

ctest runs it twice (tests/CMakeLists.txt): the classifier and datatype tests, and ImageModelTest
(resnet18, made by scripts/make_image_model.py into --generated-dir when missing) as an entry of
its own. Exits 77 (skipped) when tritonclient or numpy is missing; ImageModelTest skips itself
without torch and torchvision, DatatypesTest without models/datatypes.pt.
"""
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import warnings

import respawn_harness as h

if __name__ == "__main__":
    h.require("numpy", "tritonclient.http", "tritonclient.http.aio")

import numpy as np  # noqa: E402
import tritonclient.http as httpclient  # noqa: E402
import tritonclient.http.aio as aioclient  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

MODEL = "classifier"


def reference():
    """The classifier's reference input and outputs (scripts/make_models.py wrote them)."""
    with open(h.model_path("classifier_reference.json")) as f:
        ref = json.load(f)
    x = np.array(ref["input"]["data"], dtype=np.float32).reshape(ref["input"]["shape"])
    out = ref["outputs"]
    logits = np.array(out["logits"]["data"], dtype=np.float32).reshape(out["logits"]["shape"])
    label = np.array(out["label"]["data"], dtype=np.int64).reshape(out["label"]["shape"])
    return x, logits, label


def classifier_inputs(x, binary_data, module=httpclient):
    inputs = [module.InferInput("x", list(x.shape), "FP32")]
    inputs[0].set_data_from_numpy(x, binary_data=binary_data)
    return inputs


def requested(binary_logits, binary_label, module=httpclient):
    return [module.InferRequestedOutput("logits", binary_data=binary_logits),
            module.InferRequestedOutput("label", binary_data=binary_label)]


def status_of(raised) -> str:
    return str(raised.exception.status())


class TritonCase(unittest.TestCase):
    """One server per test class (setUpClass), stopped and reaped in tearDownClass."""

    server = None

    @classmethod
    def server_args(cls):
        return ["--model", h.model_path("classifier.pt")]

    @classmethod
    def setUpClass(cls):
        cls.server = h.Server(cls.server_args())
        cls.client = httpclient.InferenceServerClient(url=cls.server.url, network_timeout=60)

    @classmethod
    def tearDownClass(cls):
        if cls.server:
            cls.client.close()
            cls.server.close()

    def check_classifier_result(self, result, binary_logits, binary_label):
        x, logits, label = reference()
        np.testing.assert_allclose(result.as_numpy("logits"), logits, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(result.as_numpy("label"), label)
        self.assertEqual(result.as_numpy("logits").dtype, np.float32)
        self.assertEqual(result.as_numpy("label").dtype, np.int64)
        response = result.get_response()
        self.assertEqual(response["model_name"], MODEL)
        self.assertEqual(response["model_version"], "1")
        for name, binary in (("logits", binary_logits), ("label", binary_label)):
            output = result.get_output(name)
            self.assertIsNotNone(output, response)
            size = (output.get("parameters") or {}).get("binary_data_size")
            if binary:
                self.assertNotIn("data", output)
                self.assertEqual(size, result.as_numpy(name).nbytes, output)
            else:
                self.assertIsNone(size, output)
                self.assertIn("data", output)


class ClassifierTest(TritonCase):
    def test_health_and_server_metadata(self):
        self.assertTrue(self.client.is_server_live())
        self.assertTrue(self.client.is_server_ready())
        self.assertTrue(self.client.is_model_ready(MODEL))
        self.assertTrue(self.client.is_model_ready(MODEL, "1"))
        self.assertFalse(self.client.is_model_ready("nope"))
        metadata = self.client.get_server_metadata()
        self.assertEqual(metadata["name"], "respawn")
        self.assertIsInstance(metadata["version"], str)
        self.assertIsInstance(metadata["extensions"], list)
        for extension in ("binary_tensor_data", "statistics"):
            self.assertIn(extension, metadata["extensions"])

    def test_model_metadata(self):
        for version in ("", "1"):
            metadata = self.client.get_model_metadata(MODEL, version)
            self.assertEqual(metadata["name"], MODEL)
            self.assertEqual(metadata["versions"], ["1"])
            self.assertEqual(metadata["platform"], "pytorch_torchscript")
            self.assertEqual(metadata["inputs"], [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}])
            self.assertEqual(metadata["outputs"], [
                {"name": "logits", "datatype": "FP32", "shape": [-1, 3]},
                {"name": "label", "datatype": "INT64", "shape": [-1]}])
        with self.assertRaises(InferenceServerException) as raised:
            self.client.get_model_metadata("nope")
        self.assertEqual(status_of(raised), "404")

    def test_model_config(self):
        config = self.client.get_model_config(MODEL)
        self.assertEqual(config["name"], MODEL)
        self.assertEqual(config["max_batch_size"], 8)  # the default max_batch_size policy
        self.assertEqual([(i["name"], i["data_type"], i["dims"]) for i in config["input"]],
                         [("x", "TYPE_FP32", [4])])
        self.assertEqual([(o["name"], o["data_type"], o["dims"]) for o in config["output"]],
                         [("logits", "TYPE_FP32", [3]), ("label", "TYPE_INT64", [1])])
        self.assertEqual(self.client.get_model_config(MODEL, "1"), config)
        with self.assertRaises(InferenceServerException) as raised:
            self.client.get_model_config("wrong_model_name")
        self.assertEqual(status_of(raised), "404")

    def test_infer_json_tensors(self):
        x, _, _ = reference()
        result = self.client.infer(MODEL, classifier_inputs(x, binary_data=False),
                                   outputs=requested(False, False), request_id="json-1")
        self.check_classifier_result(result, False, False)
        self.assertEqual(result.get_response()["id"], "json-1")

    def test_infer_binary_tensors(self):
        x, _, _ = reference()
        result = self.client.infer(MODEL, classifier_inputs(x, binary_data=True),
                                   outputs=requested(True, True), request_id="binary-1")
        self.check_classifier_result(result, True, True)
        self.assertEqual(result.get_response()["id"], "binary-1")

    def test_infer_mixed_binary_and_json(self):
        x, _, _ = reference()
        for binary_in, binary_logits, binary_label in [(True, False, True), (False, True, False),
                                                       (False, True, True), (True, False, False)]:
            with self.subTest(binary_in=binary_in, logits=binary_logits, label=binary_label):
                result = self.client.infer(MODEL, classifier_inputs(x, binary_data=binary_in),
                                           outputs=requested(binary_logits, binary_label),
                                           query_params={"test_1": 1, "test_2": 2})
                self.check_classifier_result(result, binary_logits, binary_label)

    def test_infer_without_requested_outputs_returns_all_of_them_binary(self):
        # tritonclient then sends parameters.binary_data_output = true.
        x, _, _ = reference()
        for binary_in in (False, True):
            with self.subTest(binary_in=binary_in):
                result = self.client.infer(MODEL, classifier_inputs(x, binary_data=binary_in))
                self.check_classifier_result(result, True, True)

    def test_one_requested_output(self):
        x, _, label = reference()
        for binary in (False, True):
            with self.subTest(binary=binary):
                result = self.client.infer(
                    MODEL, classifier_inputs(x, binary_data=binary),
                    outputs=[httpclient.InferRequestedOutput("label", binary_data=binary)])
                np.testing.assert_array_equal(result.as_numpy("label"), label)
                self.assertIsNone(result.as_numpy("logits"))

    def test_model_version(self):
        x, _, _ = reference()
        result = self.client.infer(MODEL, classifier_inputs(x, binary_data=True),
                                   model_version="1", outputs=requested(True, False))
        self.check_classifier_result(result, True, False)
        for binary in (False, True):
            with self.subTest(binary=binary):
                with self.assertRaises(InferenceServerException) as raised:
                    self.client.infer(MODEL, classifier_inputs(x, binary_data=binary),
                                      model_version="2")
                self.assertEqual(status_of(raised), "404", raised.exception)
        self.assertFalse(self.client.is_model_ready(MODEL, "2"))
        with self.assertRaises(InferenceServerException) as raised:
            self.client.get_model_metadata(MODEL, "2")
        self.assertEqual(status_of(raised), "404")

    def test_unknown_model_is_404(self):
        x, _, _ = reference()
        with self.assertRaises(InferenceServerException) as raised:
            self.client.infer("wrong_model_name", classifier_inputs(x, binary_data=True))
        self.assertEqual(status_of(raised), "404")

    def test_errors_surface_as_inference_server_exceptions(self):
        bad = httpclient.InferInput("x", [1, 5], "FP32")  # the spec says [-1,4]
        bad.set_data_from_numpy(np.zeros((1, 5), dtype=np.float32), binary_data=True)
        with self.assertRaises(InferenceServerException) as raised:
            self.client.infer(MODEL, [bad])
        self.assertEqual(status_of(raised), "400")
        self.assertIn("shape", raised.exception.message())
        wrong_type = httpclient.InferInput("x", [1, 4], "FP64")
        wrong_type.set_data_from_numpy(np.zeros((1, 4), dtype=np.float64), binary_data=False)
        with self.assertRaises(InferenceServerException) as raised:
            self.client.infer(MODEL, [wrong_type])
        self.assertEqual(status_of(raised), "400")

    def test_priority_and_timeout_pass_through(self):
        # Triton's timeout is in microseconds: 100 s here, which read as milliseconds would be
        # past the 86400000 ms limit (a 400).
        x, _, _ = reference()
        for priority in (1, 5):
            with self.subTest(priority=priority):
                result = self.client.infer(MODEL, classifier_inputs(x, binary_data=True),
                                           outputs=requested(True, True), priority=priority,
                                           timeout=100_000_000)
                self.check_classifier_result(result, True, True)


class TimeoutTest(TritonCase):
    @classmethod
    def server_args(cls):
        return ["--model", h.model_path("classifier.pt"), "--enable-fault-injection"]

    def test_a_timeout_in_microseconds_ends_a_request_stuck_behind_a_slow_one(self):
        x, _, _ = reference()
        blocker_client = httpclient.InferenceServerClient(url=self.server.url, network_timeout=60)
        outcome = {}

        def blocker():
            try:
                outcome["result"] = blocker_client.infer(
                    MODEL, classifier_inputs(x, binary_data=True),
                    headers={"X-Respawn-Fault": "slow:1500"})
            except Exception as e:  # reported below
                outcome["error"] = e

        thread = threading.Thread(target=blocker)
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and "respawn_requests_inflight 1" not in \
                    self.server.request("GET", "/metrics")[2].decode():
                time.sleep(0.02)
            started = time.monotonic()
            with self.assertRaises(InferenceServerException) as raised:
                # 200 ms: read as milliseconds it would wait for the slow request and pass.
                self.client.infer(MODEL, classifier_inputs(x, binary_data=True), timeout=200_000)
            self.assertEqual(status_of(raised), "504", raised.exception)
            self.assertLess(time.monotonic() - started, 1.3)
        finally:
            thread.join(30)
            blocker_client.close()
        self.assertNotIn("error", outcome)
        self.check_classifier_result(outcome["result"], True, True)


class SharedMemoryTest(TritonCase):
    """System shared memory as Triton's simple_http_shm_client.py uses it: regions made with
    tritonclient.utils.shared_memory, registered, the input read from one and the outputs
    written to others."""

    @classmethod
    def server_args(cls):
        return ["--model", h.model_path("classifier.pt"), "--allow-client-shm"]

    def test_inputs_and_outputs_in_system_shared_memory(self):
        import tritonclient.utils.shared_memory as shm

        x, logits, label = reference()
        prefix = f"/respawn-shm-{os.getpid()}"
        handles = {
            "input": shm.create_shared_memory_region("input", prefix + "-in", x.nbytes),
            "logits": shm.create_shared_memory_region("logits", prefix + "-logits", logits.nbytes),
            "label": shm.create_shared_memory_region("label", prefix + "-label", label.nbytes),
        }
        try:
            self.client.unregister_system_shared_memory()
            shm.set_shared_memory_region(handles["input"], [x])
            self.client.register_system_shared_memory("input", prefix + "-in", x.nbytes)
            self.client.register_system_shared_memory("logits", prefix + "-logits", logits.nbytes)
            self.client.register_system_shared_memory("label", prefix + "-label", label.nbytes)
            status = self.client.get_system_shared_memory_status()
            self.assertEqual(sorted(r["name"] for r in status), ["input", "label", "logits"])
            self.assertIn("system_shared_memory", self.client.get_server_metadata()["extensions"])

            inputs = [httpclient.InferInput("x", list(x.shape), "FP32")]
            inputs[0].set_shared_memory("input", x.nbytes)
            outputs = [httpclient.InferRequestedOutput("logits", binary_data=True),
                       httpclient.InferRequestedOutput("label", binary_data=True)]
            outputs[0].set_shared_memory("logits", logits.nbytes)
            outputs[1].set_shared_memory("label", label.nbytes)
            result = self.client.infer(MODEL, inputs, outputs=outputs)

            for name, want in (("logits", logits), ("label", label)):
                output = result.get_output(name)
                self.assertIsNotNone(output)
                self.assertNotIn("data", output)
                self.assertEqual(output["parameters"]["shared_memory_region"], name)
                got = shm.get_contents_as_numpy(handles[name], want.dtype, output["shape"])
                np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)

            # A region too small for its output: Triton's client sees a 400.
            outputs[0].set_shared_memory("logits", logits.nbytes - 4)
            with self.assertRaises(InferenceServerException) as raised:
                self.client.infer(MODEL, inputs, outputs=outputs)
            self.assertEqual(status_of(raised), "400", raised.exception)

            self.client.unregister_system_shared_memory("label")
            self.assertEqual(len(self.client.get_system_shared_memory_status()), 2)
            self.client.unregister_system_shared_memory()
            self.assertEqual(self.client.get_system_shared_memory_status(), [])
        finally:
            for handle in handles.values():
                shm.destroy_shared_memory_region(handle)


class ClassificationTest(TritonCase):
    """Triton's classification extension as its image_client.py example uses it: an output asked
    for with class_count=k comes back as BYTES "value:index:label", the k highest per batch row,
    labels from --labels."""

    @classmethod
    def setUpClass(cls):
        cls.labels_dir = tempfile.TemporaryDirectory(prefix="respawn-labels-")
        cls.labels_path = os.path.join(cls.labels_dir.name, "labels.txt")
        with open(cls.labels_path, "w") as f:
            f.write("\n".join(f"class {i}" for i in range(reference()[1].shape[1])) + "\n")
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.labels_dir.cleanup()

    @classmethod
    def server_args(cls):
        return ["--model", h.model_path("classifier.pt"), "--labels", cls.labels_path]

    def test_top_classes_with_labels(self):
        x, logits, _ = reference()
        self.assertIn("classification", self.client.get_server_metadata()["extensions"])
        for binary in (True, False):
            with self.subTest(binary=binary):
                result = self.client.infer(MODEL, classifier_inputs(x, binary), outputs=[
                    httpclient.InferRequestedOutput("logits", binary_data=binary, class_count=3),
                    httpclient.InferRequestedOutput("label", binary_data=binary)])
                classes = result.as_numpy("logits")
                self.assertEqual(classes.shape, (logits.shape[0], 3))
                self.assertEqual(result.get_output("logits")["datatype"], "BYTES")
                for row, want in zip(classes, logits):
                    # Binary BYTES come back as bytes, JSON ones as str (tritonclient's way).
                    fields = [(c.decode() if isinstance(c, bytes) else c).split(":") for c in row]
                    indices = [int(f[1]) for f in fields]
                    self.assertEqual(indices, list(np.argsort(-want, kind="stable")[:3]))
                    for (value, index, label) in fields:
                        self.assertAlmostEqual(float(value), want[int(index)], places=5)
                        self.assertEqual(label, f"class {index}")
                # The other output is untouched.
                np.testing.assert_array_equal(result.as_numpy("label"), reference()[2])

    def test_a_count_past_the_classes_gives_them_all_and_a_negative_one_is_400(self):
        x, logits, _ = reference()
        result = self.client.infer(MODEL, classifier_inputs(x, True), outputs=[
            httpclient.InferRequestedOutput("logits", class_count=1000)])
        self.assertEqual(result.as_numpy("logits").shape, logits.shape)
        with self.assertRaises(InferenceServerException) as raised:
            self.client.infer(MODEL, classifier_inputs(x, True), outputs=[
                httpclient.InferRequestedOutput("logits", class_count=-1)])
        self.assertEqual(status_of(raised), "400")


class StatisticsTest(TritonCase):
    def check_duration(self, stat, name):
        self.assertIsInstance(stat, dict, name)
        self.assertIsInstance(stat.get("count"), int, f"{name}: {stat}")
        self.assertIsInstance(stat.get("ns"), int, f"{name}: {stat}")
        self.assertGreaterEqual(stat["ns"], 0, name)

    def check_model_stat(self, stat, n):
        self.assertEqual(stat["name"], MODEL)
        self.assertEqual(stat["version"], "1")
        now_ms = time.time() * 1000
        self.assertGreater(stat["last_inference"], now_ms - 600_000, stat)
        self.assertLessEqual(stat["last_inference"], now_ms + 1000, stat)
        # One row per request, run one after another: each request is its own execution.
        self.assertEqual(stat["inference_count"], n, stat)
        self.assertEqual(stat["execution_count"], n, stat)
        inference = stat["inference_stats"]
        for key in ("success", "fail", "queue", "compute_input", "compute_infer",
                    "compute_output", "cache_hit"):
            self.check_duration(inference.get(key), key)
        self.assertEqual(inference["success"]["count"], n, inference)
        self.assertEqual(inference["fail"]["count"], 1, inference)
        self.assertGreater(inference["success"]["ns"], 0, inference)
        self.assertEqual(inference["queue"]["count"], n, inference)
        self.assertEqual(inference["compute_infer"]["count"], n, inference)
        self.assertGreater(inference["compute_infer"]["ns"], 0, inference)
        self.assertEqual(inference["cache_hit"]["count"], 0, inference)
        self.assertIsInstance(stat["batch_stats"], list, stat)
        self.assertEqual([b["batch_size"] for b in stat["batch_stats"]], [1], stat)
        batch = stat["batch_stats"][0]
        for key in ("compute_input", "compute_infer", "compute_output"):
            self.check_duration(batch.get(key), key)
        self.assertEqual(batch["compute_infer"]["count"], n, batch)

    def test_statistics_count_what_was_served(self):
        before = self.client.get_inference_statistics(MODEL)
        self.assertEqual(len(before["model_stats"]), 1, before)
        self.assertEqual(before["model_stats"][0]["inference_stats"]["success"]["count"], 0, before)
        n = 6
        x = np.array([[0.5, -1.0, 2.0, 0.25]], dtype=np.float32)
        for i in range(n):
            self.client.infer(MODEL, classifier_inputs(x, binary_data=i % 2 == 0))
        # One that the model refuses (the worker checks the spec): a failure, not an inference.
        bad = httpclient.InferInput("x", [1, 5], "FP32")
        bad.set_data_from_numpy(np.zeros((1, 5), dtype=np.float32), binary_data=True)
        with self.assertRaises(InferenceServerException):
            self.client.infer(MODEL, [bad])
        for stats in (self.client.get_inference_statistics(MODEL),
                      self.client.get_inference_statistics(MODEL, "1"),
                      self.client.get_inference_statistics()):  # all models: GET /v2/models/stats
            self.assertEqual(list(stats), ["model_stats"], stats)
            self.assertEqual(len(stats["model_stats"]), 1, stats)
            self.check_model_stat(stats["model_stats"][0], n)
        with self.assertRaises(InferenceServerException):
            self.client.get_inference_statistics("nope")
        with self.assertRaises(InferenceServerException):
            self.client.get_inference_statistics(MODEL, "2")


class AsyncioTest(TritonCase):
    def test_asyncio_client(self):
        async def run():
            client = aioclient.InferenceServerClient(url=self.server.url)
            try:
                self.assertTrue(await client.is_server_live())
                self.assertTrue(await client.is_server_ready())
                self.assertTrue(await client.is_model_ready(MODEL))
                metadata = await client.get_model_metadata(MODEL)
                self.assertEqual(metadata["name"], MODEL)
                x, _, _ = reference()

                async def one(binary_in, binary_logits, binary_label):
                    return await client.infer(
                        MODEL, classifier_inputs(x, binary_in, aioclient),
                        outputs=requested(binary_logits, binary_label, aioclient))

                kinds = [(i % 2 == 0, i % 3 == 0, i % 4 < 2) for i in range(8)]
                results = await asyncio.gather(*(one(*k) for k in kinds))
                for kind, result in zip(kinds, results):
                    self.check_classifier_result(result, kind[1], kind[2])
                no_outputs = await client.infer(MODEL, classifier_inputs(x, True, aioclient))
                self.check_classifier_result(no_outputs, True, True)
                with self.assertRaises(InferenceServerException) as raised:
                    await client.infer("wrong_model_name", classifier_inputs(x, True, aioclient))
                self.assertEqual(status_of(raised), "404")
                stats = await client.get_inference_statistics(MODEL)
                self.assertEqual(len(stats["model_stats"]), 1, stats)
                self.assertEqual(stats["model_stats"][0]["inference_stats"]["success"]["count"], 9)
            finally:
                await client.close()

        asyncio.run(run())


# --- the datatypes model ---------------------------------------------------------------------

def datatypes_model():
    """models/datatypes.pt (scripts/make_models.py): forward(half FP16 [B], bfloat BF16 [B],
    u16 UINT16 [B], u32 UINT32 [B], u64 UINT64 [B], text BYTES [B]) -> (half + 1, bfloat * 2,
    u16, u32, u64, text upper-cased in ASCII)."""
    path = os.path.join(h.Paths.models_dir, "datatypes.pt")
    return path if os.path.exists(path) else None


DATATYPES_INPUTS = [("half", "FP16"), ("bfloat", "BF16"), ("u16", "UINT16"), ("u32", "UINT32"),
                    ("u64", "UINT64"), ("text", "BYTES")]
DATATYPES_OUTPUTS = [("half_plus_one", "FP16"), ("bfloat_times_two", "BF16"), ("u16", "UINT16"),
                     ("u32", "UINT32"), ("u64", "UINT64"), ("text_upper", "BYTES")]


def datatypes_sample():
    """Inputs whose outputs are exact in their own types, with each type's edges: FP16 2^-10
    steps, a BF16 that is not a float32, UINT64 values past INT64's range, non-ASCII UTF-8."""
    import ml_dtypes

    return {
        "half": np.array([0.5, -2.25, 1024.0, 2.0 ** -10], dtype=np.float16),
        "bfloat": np.array([1.5, 1 / 3, -1.0e30, 0.0], dtype=np.float32).astype(ml_dtypes.bfloat16),
        "u16": np.array([0, 1, 32768, 65535], dtype=np.uint16),
        "u32": np.array([0, 7, 2 ** 31, 2 ** 32 - 1], dtype=np.uint32),
        "u64": np.array([0, 2 ** 53 + 1, 2 ** 63, 2 ** 64 - 1], dtype=np.uint64),
        "text": np.array(["h\u00e9llo".encode(), b"", b"respawn 2", "\u2713 ok".encode()],
                         dtype=np.object_),
    }


def datatypes_expected(x):
    return {
        "half_plus_one": (x["half"].astype(np.float32) + 1).astype(np.float16),
        "bfloat_times_two": (x["bfloat"].astype(np.float32) * 2).astype(x["bfloat"].dtype),
        "u16": x["u16"], "u32": x["u32"], "u64": x["u64"],
        "text_upper": np.array([bytes(c - 32 if 97 <= c <= 122 else c for c in v)
                                for v in x["text"]], dtype=np.object_),
    }


class DatatypesTest(unittest.TestCase):
    """FP16, BF16, UINT16/32/64 and BYTES through tritonclient, as binary data and as JSON
    (tritonclient sends BF16 only as binary data, so the all-JSON request is written by hand)."""

    @classmethod
    def setUpClass(cls):
        cls.path = datatypes_model()
        if not cls.path:
            raise unittest.SkipTest(f"no datatypes.pt in {h.Paths.models_dir} "
                                    "(scripts/make_models.py --only datatypes makes it)")
        cls.server = h.Server(["--model", cls.path, "--task", "tensor"])
        cls.client = httpclient.InferenceServerClient(url=cls.server.url, network_timeout=60)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.close()

    def check(self, got, want, name):
        self.assertEqual(list(got.shape), list(want.shape), name)
        if want.dtype == np.object_:
            # A JSON BYTES output reads back as str (tritonclient decodes it), a binary one as bytes.
            as_bytes = [v.encode() if isinstance(v, str) else bytes(v) for v in got.flatten()]
            self.assertEqual(as_bytes, [bytes(v) for v in want], name)
        else:
            self.assertEqual(got.dtype, want.dtype, name)
            np.testing.assert_array_equal(got, want, err_msg=name)

    def infer(self, binary_inputs, binary_outputs):
        x = datatypes_sample()
        inputs = []
        for name, datatype in DATATYPES_INPUTS:
            tensor = httpclient.InferInput(name, list(x[name].shape), datatype)
            tensor.set_data_from_numpy(x[name], binary_data=binary_inputs(datatype))
            inputs.append(tensor)
        outputs = None
        if binary_outputs is not None:
            outputs = [httpclient.InferRequestedOutput(name, binary_data=binary_outputs)
                       for name, _ in DATATYPES_OUTPUTS]
        result = self.client.infer("datatypes", inputs, outputs=outputs)
        want = datatypes_expected(x)
        for name, datatype in DATATYPES_OUTPUTS:
            with self.subTest(output=name):
                self.assertEqual(result.get_output(name)["datatype"], datatype)
                self.check(result.as_numpy(name), want[name], name)
        return result

    def test_metadata(self):
        metadata = self.client.get_model_metadata("datatypes")
        self.assertEqual([(i["name"], i["datatype"]) for i in metadata["inputs"]], DATATYPES_INPUTS)
        self.assertEqual([(o["name"], o["datatype"]) for o in metadata["outputs"]], DATATYPES_OUTPUTS)

    def test_binary(self):
        result = self.infer(lambda datatype: True, binary_outputs=True)
        for name, _ in DATATYPES_OUTPUTS:
            self.assertIn("binary_data_size", result.get_output(name)["parameters"])

    def test_binary_without_requested_outputs(self):
        self.infer(lambda datatype: True, binary_outputs=None)

    def test_json(self):
        # Everything as JSON but BF16, which tritonclient only sends as binary data.
        result = self.infer(lambda datatype: datatype == "BF16", binary_outputs=False)
        for name, _ in DATATYPES_OUTPUTS:
            self.assertIn("data", result.get_output(name))

    def test_json_by_hand_bf16_included(self):
        x = datatypes_sample()
        body = {"inputs": []}
        for name, datatype in DATATYPES_INPUTS:
            if datatype == "BYTES":
                data = [v.decode() for v in x[name]]
            elif datatype in ("FP16", "BF16"):
                data = [float(v) for v in x[name].astype(np.float32)]
            else:
                data = [int(v) for v in x[name]]
            body["inputs"].append({"name": name, "datatype": datatype, "shape": [len(data)],
                                   "data": data})
        status, _, raw = self.server.request("POST", "/v2/models/datatypes/infer", body)
        self.assertEqual(status, 200, raw)
        outputs = {o["name"]: o for o in json.loads(raw)["outputs"]}
        want = datatypes_expected(x)
        for name, datatype in DATATYPES_OUTPUTS:
            with self.subTest(output=name):
                got = outputs[name]
                self.assertEqual(got["datatype"], datatype)
                self.assertEqual(got["shape"], [4])
                if datatype == "BYTES":
                    self.assertEqual(got["data"], [v.decode() for v in want[name]])
                elif datatype in ("FP16", "BF16"):
                    # The shortest decimal that reads back as the same FP16 / BF16 value.
                    self.check(np.array(got["data"], dtype=want[name].dtype), want[name], name)
                else:
                    self.assertEqual(got["data"], [int(v) for v in want[name]])


# --- an image model: resnet18, 224x224 ------------------------------------------------------

class ImageModelTest(unittest.TestCase):
    """torchvision's resnet18 (scripts/make_image_model.py), served with --task tensor: one
    224x224 image as binary data, and as JSON, equals what torch computes in this process."""

    @classmethod
    def setUpClass(cls):
        try:
            import torch  # noqa: F401
            import torchvision  # noqa: F401
        except ImportError as e:
            raise unittest.SkipTest(f"needs torch and torchvision ({e})")
        cls.path = os.path.join(h.Paths.generated_dir, "resnet18.pt")
        subprocess.run([sys.executable, os.path.join(h.ROOT, "scripts", "make_image_model.py"),
                        "--if-missing", cls.path], check=True)
        cls.server = h.Server(["--model", cls.path, "--task", "tensor"])
        cls.client = httpclient.InferenceServerClient(url=cls.server.url, network_timeout=120)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.close()

    def test_metadata(self):
        metadata = self.client.get_model_metadata("resnet18")
        self.assertEqual(metadata["inputs"],
                         [{"name": "image", "datatype": "FP32", "shape": [-1, 3, 224, 224]}])
        self.assertEqual(metadata["outputs"],
                         [{"name": "logits", "datatype": "FP32", "shape": [-1, 1000]}])

    def test_one_image_equals_torch(self):
        import torch

        image = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
        with warnings.catch_warnings():  # torch 2.11 deprecates torch.jit; respawn serves it
            warnings.simplefilter("ignore", DeprecationWarning)
            model = torch.jit.load(self.path)
        with torch.no_grad():
            expected = model(torch.from_numpy(image)).numpy()
        for binary in (True, False):
            with self.subTest(binary=binary):
                tensor = httpclient.InferInput("image", list(image.shape), "FP32")
                tensor.set_data_from_numpy(image, binary_data=binary)
                result = self.client.infer(
                    "resnet18", [tensor],
                    outputs=[httpclient.InferRequestedOutput("logits", binary_data=binary)])
                got = result.as_numpy("logits")
                self.assertEqual(got.shape, (1, 1000))
                np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)

    def test_top5_classes_as_image_client_asks_for_them(self):
        """Triton's image_client.py way: class_count=5 on the 1000 logits."""
        image = np.random.default_rng(1).random((2, 3, 224, 224), dtype=np.float32)
        tensor = httpclient.InferInput("image", list(image.shape), "FP32")
        tensor.set_data_from_numpy(image)
        raw = self.client.infer("resnet18", [tensor]).as_numpy("logits")
        result = self.client.infer(
            "resnet18", [tensor],
            outputs=[httpclient.InferRequestedOutput("logits", class_count=5)])
        classes = result.as_numpy("logits")
        self.assertEqual(classes.shape, (2, 5))
        for row, logits in zip(classes, raw):
            fields = [c.decode().split(":") for c in row]
            self.assertEqual([int(f[1]) for f in fields], list(np.argsort(-logits)[:5]))
            for value, index in fields:
                self.assertAlmostEqual(float(value), logits[int(index)], places=5)


if __name__ == "__main__":
    h.main()
