#!/usr/bin/env python3
"""Writes the real GPT-2 and Qwen2.5 tokenizers of models/gpt2-vocab/ and models/qwen2.5-vocab/,
rebuilt from BPE rank files that PyPI packages ship.

  python3 -m venv /tmp/bigvenv && /tmp/bigvenv/bin/pip install tokenizers==0.23.3 tiktoken
  /tmp/bigvenv/bin/python scripts/make_big_vocab_tokenizers.py [--downloads DIR] [OUT_DIR]
                                                               (default OUT_DIR: models/)

The models themselves (model.pt, vocabulary-sized tables computed rather than stored) come from
scripts/make_big_vocab_models.py, run with the project's torch venv (scripts/python).

Sources (fetched with `pip download --no-deps` into --downloads, default a temporary folder;
nothing is installed, the rank files are read out of the archives and checked by SHA-256):
  openai-whisper==20250625 (MIT licence, OpenAI), whisper/assets/gpt2.tiktoken: GPT-2's 50,256
      byte-level BPE tokens with their ranks (tiktoken's format: base64 token, rank).
  dashscope==2.0.2 (Apache-2.0, Alibaba), dashscope/resources/qwen.tiktoken: Qwen's 151,643
      tokens and ranks (Qwen-1's vocabulary; Qwen1.5, Qwen2 and Qwen2.5 use the same 151,643
      ids with another pre-tokenizer regex and their own added tokens).

Conversion (as transformers' tiktoken converters for Llama-3 and Qwen do): the vocab maps each
token's bytes through GPT-2's bytes_to_unicode to its rank; a token of rank r has exactly one
merge, the two parts that byte-pair encoding of its own bytes with the ranks below r ends with,
and merges are listed by r. That gives back GPT-2's 50,000 merges and Qwen2's 151,387. The
pipelines are those respawn's tokenizer is tested with (tests/data/tokenizers/gpt2 and qwen2):
GPT-2 ByteLevel with its regex; Qwen2 NFC, then Split with Qwen2's regex, then ByteLevel.
Added tokens: GPT-2 <|endoftext|> = 50256 (also in the vocab, as in GPT-2's own file);
Qwen2.5's 22, <|endoftext|> = 151643 ... <|file_sep|> = 151664 (<tool_call> and later are not
special, as in Qwen2.5's file). The files are written without indentation, merges as "a b".

Checks, before anything is written: the tokenizers library loads each file and encodes a mixed
multilingual text and known strings exactly as tiktoken does with the same ranks and regex
(Qwen: on NFC text), and gives ids known for the real tokenizers (GPT-2 "Hello world" ->
[15496, 995]; Qwen2.5's system turn -> 151644 8948 198 2610 525 264 10950 17847 13 151645).
"""
import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import unicodedata
import zipfile
from typing import Dict, List

import tokenizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WHISPER = ("openai-whisper==20250625", "openai_whisper-20250625.tar.gz",
           "openai_whisper-20250625/whisper/assets/gpt2.tiktoken",
           "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930")
DASHSCOPE = ("dashscope==2.0.2", "dashscope-2.0.2-py3-none-any.whl",
             "dashscope/resources/qwen.tiktoken",
             "b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186")

GPT2_REGEX = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
QWEN2_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"""
               r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")

QWEN25_ADDED = [("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
                ("<|object_ref_start|>", True), ("<|object_ref_end|>", True),
                ("<|box_start|>", True), ("<|box_end|>", True), ("<|quad_start|>", True),
                ("<|quad_end|>", True), ("<|vision_start|>", True), ("<|vision_end|>", True),
                ("<|vision_pad|>", True), ("<|image_pad|>", True), ("<|video_pad|>", True),
                ("<tool_call>", False), ("</tool_call>", False), ("<|fim_prefix|>", False),
                ("<|fim_middle|>", False), ("<|fim_suffix|>", False), ("<|fim_pad|>", False),
                ("<|repo_name|>", False), ("<|file_sep|>", False)]

QWEN_PADDED_VOCAB = 151936  # Qwen2.5's embedding rows (the logits' width), past 151,665 tokens

CHECK_TEXT = (
    "Hello world! The quick brown fox jumps over the lazy dog. It's 2025, isn't it? I'll say "
    "they've won 1234567 times.\n\n  def f(x):\n\treturn x  **  2  # comment\r\n"
    "Здравствуй, мир. Γειά σου Κόσμε. こんにちは世界。你好，世界！今天天气很好。"
    "안녕하세요 세계. مرحبا بالعالم. नमस्ते दुनिया। வணக்கம் 👋🏽 👨‍👩‍👧 café naïve Ω≈ç√ "
    "   lots   of   spaces    \n\n\n and tabs\t\t\tend.  "
)
KNOWN_STRINGS = ["Hello world", " the", "The", "hello", " Hello", "Hello, world!", "\n", "  ",
                 "1234", "你好", "<|endoftext|>", "<|im_start|>user\nHi<|im_end|>\n"]


def bytes_to_unicode() -> Dict[int, str]:
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_CHARS = bytes_to_unicode()


def as_unicode(token: bytes) -> str:
    return "".join(BYTE_CHARS[b] for b in token)


def fetch(downloads: str, spec) -> bytes:
    requirement, archive, member, sha = spec
    path = os.path.join(downloads, archive)
    if not os.path.exists(path):
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                        "-d", downloads, requirement], check=True)
    if archive.endswith(".whl"):
        with zipfile.ZipFile(path) as z:
            data = z.read(member)
    else:
        with tarfile.open(path) as t:
            data = t.extractfile(member).read()
    got = hashlib.sha256(data).hexdigest()
    if got != sha:
        sys.exit(f"{archive}:{member}: sha256 {got}, expected {sha}")
    return data


def load_ranks(data: bytes) -> Dict[bytes, int]:
    ranks = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    assert sorted(ranks.values()) == list(range(len(ranks))), "ranks are not 0..n-1"
    return ranks


def bpe(ranks: Dict[bytes, int], token: bytes, max_rank: int) -> List[bytes]:
    parts = [bytes([b]) for b in token]
    while True:
        best, best_rank = None, None
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and (best_rank is None or r < best_rank):
                best, best_rank = i, r
        if best is None or best_rank >= max_rank:
            return parts
        parts = parts[:best] + [parts[best] + parts[best + 1]] + parts[best + 2:]


def vocab_and_merges(ranks: Dict[bytes, int]):
    vocab, merges = {}, []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        vocab[as_unicode(token)] = rank
        if len(token) == 1:
            continue
        parts = bpe(ranks, token, rank)
        assert len(parts) == 2, (token, parts)
        merges.append(as_unicode(parts[0]) + " " + as_unicode(parts[1]))
    return vocab, merges


def added(i: int, content: str, special: bool, normalized: bool) -> dict:
    return {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": normalized, "special": special}


def bpe_model(vocab, merges) -> dict:
    return {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
            "ignore_merges": False, "vocab": vocab, "merges": merges}


BYTE_LEVEL_OUT = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                  "use_regex": True}
BYTE_LEVEL_DECODER = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                      "use_regex": True}


def gpt2_tokenizer(ranks: Dict[bytes, int]) -> dict:
    vocab, merges = vocab_and_merges(ranks)
    eot = len(vocab)
    assert eot == 50256 and len(merges) == 50000
    vocab["<|endoftext|>"] = eot
    return {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [added(eot, "<|endoftext|>", True, True)],
            "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                              "use_regex": True},
            "post_processor": BYTE_LEVEL_OUT, "decoder": BYTE_LEVEL_DECODER,
            "model": bpe_model(vocab, merges)}


def qwen25_tokenizer(ranks: Dict[bytes, int]) -> dict:
    vocab, merges = vocab_and_merges(ranks)
    assert len(vocab) == 151643 and len(merges) == 151387
    return {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [added(151643 + i, c, s, False)
                             for i, (c, s) in enumerate(QWEN25_ADDED)],
            "normalizer": {"type": "NFC"},
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": QWEN2_REGEX}, "behavior": "Isolated",
                 "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                 "use_regex": False}]},
            "post_processor": BYTE_LEVEL_OUT, "decoder": BYTE_LEVEL_DECODER,
            "model": bpe_model(vocab, merges)}


def check(name: str, text: str, ranks, regex, specials: Dict[str, int], nfc: bool,
          known: Dict[str, List[int]]) -> tokenizers.Tokenizer:
    tok = tokenizers.Tokenizer.from_str(text)
    try:
        import tiktoken
    except ImportError:
        tiktoken = None
        print(f"  {name}: tiktoken is not installed; only the known ids are checked")
    if tiktoken is not None:
        enc = tiktoken.Encoding(name, pat_str=regex, mergeable_ranks=ranks,
                                special_tokens=specials)
        for s in [CHECK_TEXT] + KNOWN_STRINGS + CHECK_TEXT.split():
            want = enc.encode(unicodedata.normalize("NFC", s) if nfc else s, allowed_special="all")
            got = tok.encode(s, add_special_tokens=False).ids
            assert got == want, (name, s, got, want)
            assert tok.decode(got, skip_special_tokens=False) == (
                unicodedata.normalize("NFC", s) if nfc else s), (name, s)
        print(f"  {name}: tokenizers agrees with tiktoken ({len(enc.encode(CHECK_TEXT))} ids of the "
              "check text)")
    for s, ids in known.items():
        got = tok.encode(s, add_special_tokens=True).ids
        assert got == ids, (name, s, got, ids)
    return tok


def write_json(path: str, obj, compact: bool) -> None:
    with open(path, "w", encoding="utf-8") as f:
        if compact:
            json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
        else:
            json.dump(obj, f, ensure_ascii=False, indent=2)
            f.write("\n")
    print(f"  wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path):,} bytes)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--downloads", help="folder for (or holding) the pip downloads")
    ap.add_argument("out", nargs="?", default=os.path.join(ROOT, "models"))
    args = ap.parse_args()
    assert tokenizers.__version__ == "0.23.3", tokenizers.__version__
    with tempfile.TemporaryDirectory() as tmp:
        downloads = args.downloads or tmp
        os.makedirs(downloads, exist_ok=True)
        gpt2_ranks = load_ranks(fetch(downloads, WHISPER))
        qwen_ranks = load_ranks(fetch(downloads, DASHSCOPE))

    out = os.path.join(args.out, "gpt2-vocab")
    os.makedirs(out, exist_ok=True)
    gpt2 = json.dumps(gpt2_tokenizer(gpt2_ranks), ensure_ascii=False, separators=(",", ":"))
    tok = check("gpt2", gpt2, gpt2_ranks, GPT2_REGEX, {"<|endoftext|>": 50256}, False, {
        "Hello world": [15496, 995], " the": [262], "<|endoftext|>": [50256],
        "Hello, world!": [15496, 11, 995, 0]})
    assert tok.get_vocab_size(with_added_tokens=True) == 50257
    write_json(os.path.join(out, "tokenizer.json"), json.loads(gpt2), True)
    write_json(os.path.join(out, "tokenizer_config.json"), {
        "tokenizer_class": "GPT2TokenizerFast", "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "model_max_length": 1024,
        "clean_up_tokenization_spaces": False, "add_prefix_space": False}, False)
    write_json(os.path.join(out, "generation_config.json"),
               {"bos_token_id": 50256, "eos_token_id": 50256}, False)

    out = os.path.join(args.out, "qwen2.5-vocab")
    os.makedirs(out, exist_ok=True)
    qwen = json.dumps(qwen25_tokenizer(qwen_ranks), ensure_ascii=False, separators=(",", ":"))
    tok = check("qwen2.5", qwen, qwen_ranks, QWEN2_REGEX,
                {c: 151643 + i for i, (c, _) in enumerate(QWEN25_ADDED)}, True, {
                    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n":
                        [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198],
                    "<|im_start|>user\n": [151644, 872, 198],
                    "<|im_start|>assistant\n": [151644, 77091, 198]})
    assert tok.get_vocab_size(with_added_tokens=True) == 151665
    write_json(os.path.join(out, "tokenizer.json"), json.loads(qwen), True)
    with open(os.path.join(ROOT, "tests/data/chat_templates/qwen2.5.jinja"), encoding="utf-8") as f:
        template = f.read()
    write_json(os.path.join(out, "tokenizer_config.json"), {
        "tokenizer_class": "Qwen2TokenizerFast", "bos_token": None, "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>", "model_max_length": 131072,
        "clean_up_tokenization_spaces": False, "errors": "replace", "split_special_tokens": False,
        "chat_template": template}, False)
    write_json(os.path.join(out, "generation_config.json"),
               {"bos_token_id": 151643, "eos_token_id": [151645, 151643],
                "pad_token_id": 151643}, False)


if __name__ == "__main__":
    main()
