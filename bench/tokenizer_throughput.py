#!/usr/bin/env python3
"""Single-thread encode throughput (MB/s) of respawn's tokenizer (respawn-bench-tokenizer) and
of Hugging Face tokenizers on the same documents, in one run, with a check that both give the
same ids (their count and sum). Needs a Python with `tokenizers` (not the project's torch venv:
docs/tokenizers.md), e.g.

  python3 -m venv /tmp/tokvenv && /tmp/tokvenv/bin/pip install tokenizers==0.23.3
  /tmp/tokvenv/bin/python bench/tokenizer_throughput.py --bin build/bin
  /tmp/tokvenv/bin/python bench/tokenizer_throughput.py --text big.txt --repeat 1 \
      --tokenizer /path/to/Qwen2.5/tokenizer.json

The text defaults to scripts/make_tokenizer_refs.py's multilingual training text and test
strings, --repeat times over (repeated words favour both word caches alike); it is cut into
documents of about --doc-bytes bytes at line ends.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from tokenizers import Tokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from benchlib import table  # noqa: E402


def documents(text: str, doc_bytes: int) -> list:
    docs, doc = [], ""
    for line in text.splitlines(keepends=True):
        doc += line
        if len(doc.encode()) >= doc_bytes:
            docs.append(doc)
            doc = ""
    if doc:
        docs.append(doc)
    return docs


def bench_library(path: str, docs: list, repeats: int, special: bool) -> dict:
    tok = Tokenizer.from_file(path)
    count = total = 0
    for d in docs:
        ids = tok.encode(d, add_special_tokens=special).ids
        count += len(ids)
        total += sum(ids)
    nbytes = sum(len(d.encode()) for d in docs)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for d in docs:
            tok.encode(d, add_special_tokens=special)
        rates.append(nbytes / (time.perf_counter() - start) / 1e6)
    return {"bytes": nbytes, "ids": count, "id_sum": total, "mb_per_s_median": statistics.median(rates)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    p.add_argument("--tokenizer", action="append",
                   help="tokenizer.json (repeatable; default: the four under tests/data/tokenizers)")
    p.add_argument("--text", help="a UTF-8 text file (default: the reference text)")
    p.add_argument("--repeat", type=int, default=100, help="copies of the text")
    p.add_argument("--doc-bytes", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3, help="timed passes (median reported)")
    p.add_argument("--add-special-tokens", action="store_true")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ["RAYON_NUM_THREADS"] = "1"

    if args.text:
        with open(args.text, encoding="utf-8", newline="") as f:
            text = f.read()
    else:
        import make_tokenizer_refs as refs
        text = refs.TRAINING_TEXT + "\n".join(refs.TEST_STRINGS) + "\n"
    docs = documents(text * args.repeat, args.doc_bytes)
    data = os.path.join(ROOT, "tests", "data", "tokenizers")
    paths = args.tokenizer or [os.path.join(data, n, "tokenizer.json")
                               for n in ("gpt2", "qwen2", "llama3", "sentencepiece")]
    results = []
    with tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8") as f:
        json.dump(docs, f, ensure_ascii=False)
        f.flush()
        for path in paths:
            cmd = [os.path.join(args.bin, "respawn-bench-tokenizer"), "--tokenizer", path,
                   "--documents", f.name, "--repeats", str(args.repeats)]
            if args.add_special_tokens:
                cmd.append("--add-special-tokens")
            ours = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            theirs = bench_library(path, docs, args.repeats, args.add_special_tokens)
            same = ours["ids"] == theirs["ids"] and ours["id_sum"] == theirs["id_sum"]
            results.append({"tokenizer": path, "bytes": ours["bytes"], "ids": ours["ids"],
                            "ids_agree": same, "respawn_mb_per_s": round(ours["mb_per_s_median"], 2),
                            "tokenizers_mb_per_s": round(theirs["mb_per_s_median"], 2)})
    import tokenizers
    print(f"single-thread encode, {len(docs)} documents of ~{args.doc_bytes} bytes, "
          f"tokenizers {tokenizers.__version__}\n")
    table(["tokenizer", "bytes", "ids", "ids agree", "respawn MB/s", "tokenizers MB/s", "ratio"],
          [[os.path.relpath(r["tokenizer"], ROOT), r["bytes"], r["ids"], r["ids_agree"],
            r["respawn_mb_per_s"], r["tokenizers_mb_per_s"],
            f'{r["respawn_mb_per_s"] / r["tokenizers_mb_per_s"]:.1f}x'] for r in results])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0 if all(r["ids_agree"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
