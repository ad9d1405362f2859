#!/usr/bin/env python3
# requires: gguf tokenizers
"""Reference tokenizer for Tandem's tests.

Builds a Hugging Face `tokenizers` byte-level BPE tokenizer from the vocabulary, merges, token types and
pre-tokenizer name stored in a GGUF file (the same metadata Tandem's Swift tokenizer reads), so the Swift
encoder can be checked against an independent implementation of BPE and of the pre-tokenizer regexes.

Usage:
  tokenizer_reference.py --gguf MODEL.gguf --input texts.json --output ids.json
    input:  {"batches": [{"texts": ["...", ...], "parse_special": false}, ...]}
    output: {"pre": "...", "batches": [{"ids": [[...], ...], "decoded": ["...", ...]}, ...]}
  tokenizer_reference.py --gguf MODEL.gguf --text "hello world" [--parse-special]
"""
import argparse
import json
import sys

from gguf import GGUFReader
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

# The splitting expressions of the HF tokenizer.json files of each family.
GPT2_RE = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
QWEN2_RE = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
LLAMA3_RE = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

FAMILIES = {
    "gpt2": ["gpt2", "gpt-2", "default", "mpt", "olmo", "jais"],
    "smollm": ["smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"],
    "qwen2": ["qwen2", "stablelm2", "deepseek-r1-qwen", "hunyuan"],
    "llama3": ["llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral"],
}


def family(pre_name):
    for fam, names in FAMILIES.items():
        if pre_name.lower() in names:
            return fam
    return "gpt2"


def field(reader, key):
    f = reader.fields.get(key)
    return None if f is None else f.contents()


def build(path):
    r = GGUFReader(path)
    assert field(r, "tokenizer.ggml.model") == "gpt2", "only byte-level BPE is supported"
    tokens = field(r, "tokenizer.ggml.tokens")
    merges = field(r, "tokenizer.ggml.merges")
    types = field(r, "tokenizer.ggml.token_type") or [1] * len(tokens)
    pre_name = field(r, "tokenizer.ggml.pre") or "default"
    fam = family(pre_name)

    vocab = {}
    for i, t in enumerate(tokens):
        vocab.setdefault(t, i)
    merge_pairs = [tuple(m.split(" ", 1)) for m in merges]
    bpe = models.BPE(vocab=vocab, merges=merge_pairs, ignore_merges=(fam == "llama3"))
    tok = Tokenizer(bpe)
    if fam == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    elif fam == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ])
    else:
        regex = QWEN2_RE if fam == "qwen2" else LLAMA3_RE
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    tok.decoder = decoders.ByteLevel()

    # Control tokens are "special" added tokens; user-defined ones are plain added tokens, always matched.
    special = [AddedToken(tokens[i], special=True, normalized=False) for i, t in enumerate(types) if t == 3]
    user = [AddedToken(tokens[i], special=False, normalized=False) for i, t in enumerate(types) if t == 4]
    if special:
        tok.add_special_tokens(special)
    if user:
        tok.add_tokens(user)
    return tok, pre_name


def encode(tok, texts, parse_special):
    # With encode_special_tokens the special tokens written in the text are split like plain text.
    tok.encode_special_tokens = not parse_special
    ids = [tok.encode(t, add_special_tokens=False).ids for t in texts]
    decoded = [tok.decode(i, skip_special_tokens=False) for i in ids]
    return ids, decoded


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--input")
    ap.add_argument("--output")
    ap.add_argument("--text")
    ap.add_argument("--parse-special", action="store_true")
    args = ap.parse_args()
    tok, pre_name = build(args.gguf)
    if args.text is not None:
        ids, decoded = encode(tok, [args.text], args.parse_special)
        print(json.dumps({"pre": pre_name, "ids": ids[0], "decoded": decoded[0]}, ensure_ascii=False))
        return
    with open(args.input, encoding="utf-8") as f:
        req = json.load(f)
    batches = []
    for batch in req["batches"]:
        ids, decoded = encode(tok, batch["texts"], bool(batch.get("parse_special", False)))
        batches.append({"ids": ids, "decoded": decoded})
    out = {"pre": pre_name, "batches": batches}
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump(out, f, ensure_ascii=False)
    else:
        json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
