#!/usr/bin/env python3
"""Reference data for respawn's SentencePiece `tokenizer.model` support (text/tokenizer_spm.cpp).

Pinned: sentencepiece==0.1.98 (PyPI), the release closest to Debian bookworm's
libsentencepiece-dev 0.1.97 that has a wheel for Python 3.11 (0.1.97 has none). Run it from a
venv of its own, never the project's torch venv:

    python3 -m venv /work/spvenv && /work/spvenv/bin/pip install sentencepiece==0.1.98
    /work/spvenv/bin/python scripts/make_sentencepiece_refs.py

It trains two small SentencePiece models on the multilingual training text of
scripts/make_tokenizer_refs.py (read from that file without importing it, so `tokenizers` need
not be installed) and writes:

- tests/data/tokenizers/spm_bpe/tokenizer.model: BPE, Llama-2 style (byte_fallback, identity
  normalization, split digits, whitespace-only pieces, <unk>=0 <s>=1 </s>=2);
- tests/data/tokenizers/spm_unigram/tokenizer.model: Unigram, T5 style (nmt_nfkc
  normalization, no BOS, <pad>=0 </s>=1 <unk>=2, no byte fallback so rare characters are
  <unk>), with a user-defined symbol and a control symbol;
- tests/data/tokenizers/sentencepiece_references.json: for each model its pieces and their
  kinds, and for each test string (the same TEST_STRINGS) what the C++ Tokenizer must give:
  encode without / with BOS (add_special_tokens), decode of each, and decode skipping
  control and unknown ids (what Tokenizer::decode(ids, skip_special_tokens=true) does).

Training uses one thread and no input shuffling, so it is deterministic.
"""
import ast
import io
import json
import os
import sys

import sentencepiece as spm

PINNED = "0.1.98"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "tests", "data", "tokenizers")


def hf_script_constants():
    """TRAINING_TEXT and TEST_STRINGS of make_tokenizer_refs.py, read as literals."""
    with open(os.path.join(HERE, "make_tokenizer_refs.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    wanted = {"TRAINING_TEXT", "TEST_STRINGS"}
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            name = getattr(node.targets[0], "id", None)
            if name in wanted:
                found[name] = ast.literal_eval(node.value)
    if set(found) != wanted:
        sys.exit(f"make_tokenizer_refs.py: missing {wanted - set(found)}")
    return found["TRAINING_TEXT"], found["TEST_STRINGS"]


TRAINING_TEXT, HF_TEST_STRINGS = hf_script_constants()

# The tokenizer.json strings, plus cases of SentencePiece's own symbols.
TEST_STRINGS = HF_TEST_STRINGS + [
    "<pad> <mask> <ctrl> [MASK]x[MASK]",
    "unknown ☃ ⌘ ᚠ ꙮ 𓀀 here",
]


def corpus():
    return [line.rstrip("\n") for line in TRAINING_TEXT.splitlines() if line.strip()] * 3


def train(**options):
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus()), model_writer=model,
                                   num_threads=1, shuffle_input_sentence=False,
                                   minloglevel=2, **options)
    return model.getvalue()


def train_bpe():
    """Llama-2's trainer options, at a small vocab."""
    return train(model_type="bpe", vocab_size=1200, character_coverage=0.99995,
                 byte_fallback=True, split_digits=True, allow_whitespace_only_pieces=True,
                 remove_extra_whitespaces=False, normalization_rule_name="identity",
                 add_dummy_prefix=True, split_by_unicode_script=True, max_sentence_length=4192,
                 unk_id=0, bos_id=1, eos_id=2, pad_id=-1, hard_vocab_limit=False)


def train_unigram():
    """T5's layout: no BOS; NFKC; rare characters fall to <unk>."""
    return train(model_type="unigram", vocab_size=1000, character_coverage=0.995,
                 normalization_rule_name="nmt_nfkc", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                 user_defined_symbols=["[MASK]"], control_symbols=["<ctrl>"],
                 hard_vocab_limit=False)


def references(model_bytes):
    sp = spm.SentencePieceProcessor(model_proto=model_bytes)
    n = sp.get_piece_size()
    pieces = [sp.id_to_piece(i) for i in range(n)]
    kinds = []
    for i in range(n):
        kind = "normal"
        if sp.is_control(i):
            kind = "control"
        elif sp.is_unknown(i):
            kind = "unknown"
        elif sp.is_byte(i):
            kind = "byte"
        elif sp.is_unused(i):
            kind = "unused"
        kinds.append(kind)

    def skip(ids):
        return [i for i in ids if not (sp.is_control(i) or sp.is_unknown(i))]

    cases = []
    for text in TEST_STRINGS:
        plain = sp.encode(text)
        with_bos = sp.encode(text, add_bos=sp.bos_id() >= 0)
        cases.append({
            "plain": {"ids": plain, "decoded": sp.decode(plain)},
            "with_special": {"ids": with_bos, "decoded": sp.decode(with_bos)},
            "decoded_skip_special": sp.decode(skip(with_bos)),
        })
    # Id sequences no string encodes to: control ids mid-text, unknowns, lone and split bytes.
    byte_ids = [i for i in range(n) if sp.is_byte(i)]
    extra = [list(range(min(n, 40))), list(range(n - 20, n))]
    if byte_ids:
        by_value = {int(pieces[i][3:5], 16): i for i in byte_ids}
        euro = [by_value[b] for b in "€".encode()]
        extra += [euro, euro[:2], [euro[0]] + sp.encode("x") + euro, [by_value[0xFF]],
                  [by_value[0x41], by_value[0xC3], by_value[0xA9]]]
    extra.append(sp.encode("a b") + [sp.eos_id()] + sp.encode(" c d"))
    decodes = [{"ids": ids, "decoded": sp.decode(ids), "decoded_skip_special": sp.decode(skip(ids))}
               for ids in extra]
    return {"piece_size": n, "bos_id": sp.bos_id(), "eos_id": sp.eos_id(), "unk_id": sp.unk_id(),
            "pad_id": sp.pad_id(), "pieces": pieces, "kinds": kinds, "cases": cases,
            "decodes": decodes}


def main():
    if spm.__version__ != PINNED:
        sys.exit(f"sentencepiece=={PINNED} expected, found {spm.__version__}")
    out = {"sentencepiece_version": spm.__version__, "strings": TEST_STRINGS, "models": {}}
    for name, model_bytes in (("spm_bpe", train_bpe()), ("spm_unigram", train_unigram())):
        os.makedirs(os.path.join(ROOT, name), exist_ok=True)
        with open(os.path.join(ROOT, name, "tokenizer.model"), "wb") as f:
            f.write(model_bytes)
        out["models"][name] = references(model_bytes)
    with open(os.path.join(ROOT, "sentencepiece_references.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
