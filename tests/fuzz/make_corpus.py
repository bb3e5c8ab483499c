#!/usr/bin/env python3
"""Writes the seed corpora in tests/fuzz/corpus/<target>/ (docs/testing.md).

Seeds are small hand-made inputs, valid and nearly valid, that start each fuzzer at the
interesting parts of its format. Run it again after changing a seed; the fuzzers' own findings
are not kept here (only the unit tests that they became).
"""
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

# Message types and header layout as in common/respawn/frame.hpp.
MAGIC, VERSION = 0x4E505352, 1
READY, INFER, GENERATE, TOKEN, RESULT, ERROR, HEARTBEAT, CANCEL, SHUTDOWN, CONFIGURE = range(1, 11)


def frame(kind, request_id, text=b"", binary=b"", magic=MAGIC, version=VERSION, json_len=None):
    if isinstance(text, str):
        text = text.encode()
    jl = len(text) if json_len is None else json_len
    return struct.pack("<IHHQII", magic, version, kind, request_id, jl, len(binary)) + text + binary


def write(target, name, data):
    path = os.path.join(CORPUS, target)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def frames():
    # Byte 0: bit 0 = 4 KiB frame limit; bits 1-3 = how many read sizes follow.
    ready = frame(READY, 0, '{"task":"generate","device":"cpu","max_context":1024}')
    gen = frame(GENERATE, 7, '{"prompt":"hi","max_tokens":4,"temperature":0,"top_p":1,"stop":[]}')
    token = frame(TOKEN, 7, '{"text":"he"}')
    result = frame(RESULT, 7, '{"text_output":"hello","finish_reason":"stop"}')
    infer = frame(INFER, 9, '{"inputs":[{"name":"x","datatype":"FP32","shape":[2],'
                  '"offset":0,"nbytes":8}]}', struct.pack("<ff", 1.5, -2.0))
    write("fuzz_frame", "ready", b"\x00" + ready)
    write("fuzz_frame", "stream_split", bytes([0x06, 0, 3, 23]) + gen + token + result)
    write("fuzz_frame", "infer_binary", b"\x01" + infer)
    write("fuzz_frame", "heartbeat_cancel", b"\x00" + frame(HEARTBEAT, 0, '{"rss_bytes":1}') +
          frame(CANCEL, 7) + frame(SHUTDOWN, 0) + frame(CONFIGURE, 0, '{"max_batch_size":8}'))
    write("fuzz_frame", "error", b"\x00" + frame(ERROR, 3, '{"kind":"oom","message":"x",'
                                                        '"healthy":true}'))
    write("fuzz_frame", "bad_magic", b"\x00" + frame(RESULT, 1, "{}", magic=0x12345678))
    write("fuzz_frame", "bad_version", b"\x00" + frame(RESULT, 1, "{}", version=2))
    write("fuzz_frame", "bad_type", b"\x00" + frame(99, 1, "{}"))
    write("fuzz_frame", "too_large", b"\x01" + frame(RESULT, 1, "{}", json_len=1 << 20))
    write("fuzz_frame", "truncated", b"\x00" + result[:-3])
    write("fuzz_frame", "header_only", b"\x00" + frame(RESULT, 1)[:24])


def tensors():
    write("fuzz_tensor_codec", "fp32", '[{"name":"x","datatype":"FP32","shape":[2,2],'
          '"data":[[1.5,-2],[0.1,3e38]]}]')
    write("fuzz_tensor_codec", "all_types", json.dumps([
        {"name": "b", "datatype": "BOOL", "shape": [2], "data": [True, False]},
        {"name": "u8", "datatype": "UINT8", "shape": [2], "data": [0, 255]},
        {"name": "i8", "datatype": "INT8", "shape": [2], "data": [-128, 127]},
        {"name": "i16", "datatype": "INT16", "shape": [1], "data": [-32768]},
        {"name": "i32", "datatype": "INT32", "shape": [1], "data": [2147483647]},
        {"name": "i64", "datatype": "INT64", "shape": [2], "data": [-9223372036854775808,
                                                                    9223372036854775807]},
        {"name": "f64", "datatype": "FP64", "shape": [1], "data": [1e308]},
    ]))
    write("fuzz_tensor_codec", "new_types", json.dumps([
        {"name": "u16", "datatype": "UINT16", "shape": [2], "data": [0, 65535]},
        {"name": "u32", "datatype": "UINT32", "shape": [1], "data": [4294967295]},
        {"name": "u64", "datatype": "UINT64", "shape": [1], "data": [18446744073709551615]},
        {"name": "f16", "datatype": "FP16", "shape": [3], "data": [0.1, 2049, 65504]},
        {"name": "bf16", "datatype": "BF16", "shape": [2], "data": [0.333, -3e38]},
        {"name": "s", "datatype": "BYTES", "shape": [2, 2], "data": [["", "a\u0000b"],
                                                                    ["h\u00e9", "\u2713"]]},
    ]))
    # BYTES from a worker: length-prefixed elements, then one whose length runs past the end.
    write("fuzz_tensor_codec", "worker_bytes", b'[{"name":"s","datatype":"BYTES","shape":[2],'
          b'"offset":0,"nbytes":11},{"name":"t","datatype":"BYTES","shape":[1],"offset":64,'
          b'"nbytes":6}]\x00' + struct.pack("<I", 2) + b"hi" + struct.pack("<I", 1) + b"\xff"
          + b"\x00" * 53 + struct.pack("<I", 9) + b"ab")
    write("fuzz_tensor_codec", "infer_body", '{"inputs":[{"name":"INPUT0","datatype":"INT64",'
          '"shape":[1,3],"data":[1,2,3]}],"outputs":[{"name":"OUTPUT0"}]}')
    # Nested numbers of every kind, and an input whose data is not numbers: parse_infer_body
    # reads the first apart from nlohmann and leaves the second to it.
    write("fuzz_tensor_codec", "infer_numbers", '{"inputs":[{"name":"a","datatype":"FP16",'
          '"shape":[2,3],"data":[[0.1,-2.5e-3,1E2],[-0,18446744073709551615,-7]]},'
          '{"name":"b","datatype":"BOOL","shape":[1],"data":[true]}],"id":"x"}')
    write("fuzz_tensor_codec", "empty_shape", '[{"name":"e","datatype":"FP32","shape":[0,5],'
          '"data":[]}]')
    write("fuzz_tensor_codec", "out_of_range", '[{"name":"o","datatype":"UINT8","shape":[1],'
          '"data":[256]},{"name":"f","datatype":"FP32","shape":[1],"data":[1e39]}]')
    write("fuzz_tensor_codec", "huge_shape", '[{"name":"h","datatype":"INT8",'
          '"shape":[4294967296,4294967296],"data":[1]}]')
    # A worker's tensor list over a raw blob (after the NUL byte).
    write("fuzz_tensor_codec", "worker_list", b'[{"name":"y","datatype":"FP32","shape":[2],'
          b'"offset":0,"nbytes":8},{"name":"z","datatype":"INT16","shape":[1],"offset":64,'
          b'"nbytes":2}]\x00' + struct.pack("<ff", 0.5, float("nan")) + b"\x00" * 56 + b"\x01\x80")
    write("fuzz_tensor_codec", "worker_outputs", b'{"outputs":[{"name":"y","datatype":"FP64",'
          b'"shape":[1],"offset":0,"nbytes":8}]}\x00' + struct.pack("<d", float("inf")))
    write("fuzz_tensor_codec", "worker_overrun", b'[{"name":"y","datatype":"INT64","shape":[1],'
          b'"offset":18446744073709551615,"nbytes":8}]\x00abcdefgh')


def generate():
    write("fuzz_generate_request", "minimal", '{"text_input":"hello"}')
    write("fuzz_generate_request", "all_params", '{"text_input":"once upon","max_tokens":32,'
          '"temperature":0.7,"top_p":0.9,"seed":42,"stop":["\\n","."]}')
    write("fuzz_generate_request", "nested", '{"text_input":"x","max_tokens":2,"parameters":'
          '{"max_tokens":4,"stop":"end","seed":18446744073709551615}}')
    write("fuzz_generate_request", "ipc_form", '{"prompt":"p","max_tokens":16,"temperature":0,'
          '"top_p":1,"stop":[]}')
    write("fuzz_generate_request", "bad_values", '{"text_input":"x","max_tokens":1.5,'
          '"temperature":-1,"top_p":0,"seed":-3,"stop":[1]}')
    write("fuzz_generate_request", "limits", '{"text_input":"0123456789abcdefg","max_tokens":4097,'
          '"stop":["a","b","c","d","e","f","g","h","i"]}')


def openai():
    write("fuzz_openai_request", "completion", '{"model":"demo","prompt":"Say hi","max_tokens":8,'
          '"temperature":0,"stop":["\\n"]}')
    write("fuzz_openai_request", "completion_array", '{"prompt":["one"],"stream":true,'
          '"stream_options":{"include_usage":true},"n":1}')
    write("fuzz_openai_request", "chat", '{"model":"demo","messages":[{"role":"system","content":'
          '"be brief"},{"role":"user","content":"hi"}],"max_completion_tokens":5,"seed":1}')
    write("fuzz_openai_request", "chat_parts", '{"messages":[{"role":"user","content":[{"type":'
          '"text","text":"a"},{"type":"text","text":"b"}]}],"top_p":0.5}')
    write("fuzz_openai_request", "chat_max_stop", '{"messages":[{"role":"user","content":"x"}],'
          '"stop":["1","2","3","4","5","6","7"]}')
    write("fuzz_openai_request", "wrong_model", '{"model":"gpt-4","prompt":"x"}')
    write("fuzz_openai_request", "bad_n", '{"prompt":"x","n":2,"stream":"yes"}')


def http_request(method, target, body=None, headers=(), chunked=False, version="1.1"):
    lines = [f"{method} {target} HTTP/{version}", "Host: 127.0.0.1:8000"]
    lines += list(headers)
    payload = b""
    if body is not None:
        body = body.encode() if isinstance(body, str) else body
        lines.append("Content-Type: application/json")
        if chunked:
            lines.append("Transfer-Encoding: chunked")
            half = len(body) // 2
            for part in (body[:half], body[half:]):
                payload += b"%x\r\n" % len(part) + part + b"\r\n"
            payload += b"0\r\n\r\n"
        else:
            lines.append(f"Content-Length: {len(body)}")
            payload = body
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def http():
    # Byte 0: flags of tests/fuzz/fuzz_http.cpp (1 loopback, 2 admin token, 4 fault injection,
    # 8 drain instead of disconnect, 16 small body limit).
    loop, token, fault, drain, small = 1, 2, 4, 8, 16
    infer = json.dumps({"id": "r1", "inputs": [{"name": "INPUT0", "datatype": "FP32",
                                               "shape": [1, 2], "data": [1.0, 2.0]}],
                        "outputs": [{"name": "OUTPUT0"}]})
    gen = '{"text_input":"hello","max_tokens":4,"parameters":{"temperature":0}}'
    binary_header = json.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 2],
                                            "parameters": {"binary_data_size": 8}}],
                                "outputs": [{"name": "OUTPUT0",
                                             "parameters": {"binary_data": True}}],
                                "parameters": {"priority": 1, "timeout": 5000000}})
    chat = json.dumps({"model": "demo", "messages": [{"role": "user", "content": "hi"}],
                       "max_tokens": 4})
    seeds = {
        "get_v2": (loop, http_request("GET", "/v2")),
        "health": (0, http_request("GET", "/v2/health/live") +
                   http_request("GET", "/v2/health/ready") +
                   http_request("GET", "/v2/models/demo/ready")),
        "model_metadata": (0, http_request("GET", "/v2/models/demo/versions/1")),
        "infer": (loop, http_request("POST", "/v2/models/demo/infer", infer)),
        "infer_chunked": (loop, http_request("POST", "/v2/models/demo/infer", infer, chunked=True)),
        "infer_other_model": (0, http_request("POST", "/v2/models/other/infer", infer)),
        "infer_binary": (loop, http_request(
            "POST", "/v2/models/demo/versions/1/infer", binary_header.encode() + b"\0" * 8,
            [f"Inference-Header-Content-Length: {len(binary_header)}"])),
        "status_page": (0, http_request("GET", "/") + http_request("GET", "/status?x=1")),
        "stats": (0, http_request("GET", "/v2/models/stats") +
                  http_request("GET", "/v2/models/demo/versions/1/stats")),
        "generate": (0, http_request("POST", "/v2/models/demo/generate", gen,
                                     ["X-Respawn-Priority: 3", "X-Respawn-Timeout-Ms: 5000"])),
        "generate_drain": (drain, http_request("POST", "/v2/models/demo/generate", gen)),
        "generate_stream": (0, http_request("POST", "/v2/models/demo/generate_stream", gen)),
        "generate_http10": (0, http_request("POST", "/v2/models/demo/generate", gen,
                                            version="1.0")),
        "generate_fault": (fault, http_request("POST", "/v2/models/demo/generate", gen,
                                               ["X-Respawn-Fault: slow:10"])),
        "openai_chat": (0, http_request("POST", "/v1/chat/completions", chat)),
        "openai_chat_stream": (0, http_request(
            "POST", "/v1/chat/completions",
            json.dumps({"messages": [{"role": "user", "content": "hi"}], "stream": True,
                        "stream_options": {"include_usage": True}}))),
        "openai_completion": (0, http_request("POST", "/v1/completions",
                                              '{"prompt":"hi","max_tokens":2,"n":1}')),
        "openai_models": (0, http_request("GET", "/v1/models")),
        "metrics": (0, http_request("GET", "/metrics")),
        "admin_workers": (loop, http_request("GET", "/admin/workers")),
        "admin_policy_patch": (loop, http_request("PATCH", "/admin/policy",
                                                  '{"max_requests":100,"request_timeout_ms":60000,'
                                                  '"prestart_spare":true}')),
        "admin_policy_token": (token, http_request("PATCH", "/admin/policy",
                                                   '{"max_batch_size":1}',
                                                   ["Authorization: Bearer secret"])),
        "admin_recycle": (loop, http_request("POST", "/admin/recycle?now=1")),
        "admin_fault": (loop | fault, http_request("PUT", "/admin/fault", '{"start":"crash"}')),
        "admin_refused": (0, http_request("GET", "/admin/policy")),
        "method_not_allowed": (0, http_request("DELETE", "/v2/models/demo/infer")),
        "not_found": (0, http_request("GET", "/nope?x=1")),
        "pipelined": (loop, http_request("GET", "/v2/health/live") +
                      http_request("POST", "/v2/models/demo/generate", gen) +
                      http_request("GET", "/metrics")),
        "body_limit": (small, http_request("POST", "/v2/models/demo/generate", gen * 3)),
        "bad_json": (0, http_request("POST", "/v2/models/demo/generate", '{"text_input":')),
        "not_object": (0, http_request("POST", "/v1/completions", '[1,2]')),
        "malformed": (0, b"GET /v2 HTTP/1.1\r\nHost\r\n\r\n"),
        "bad_chunk": (0, b"POST /v2/models/demo/generate HTTP/1.1\r\nHost: x\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"),
    }
    for name, (flags, data) in seeds.items():
        write("fuzz_http", name, bytes([flags]) + data)


def main():
    shutil.rmtree(CORPUS, ignore_errors=True)
    frames()
    tensors()
    generate()
    openai()
    http()


if __name__ == "__main__":
    main()
