#!/usr/bin/env python3
"""Minimal GGUF vocabulary helper for the reference scripts (validation convenience only).

- `decode` turns token ids of a GPT-2-style byte-level BPE vocabulary back into text.
- `encode_simple` is a *simplified* byte-level BPE encoder: it pre-splits on a GPT-2-like regex
  restricted to ASCII classes and applies the GGUF merges by rank. It is good enough to turn short
  plain-English prompts into the ids the model expects, for eyeballing the reference model. It is
  not the project's tokenizer oracle (that is tokenizer_reference.py, owned elsewhere).
- `bytes_to_unicode` / `GPT2_BYTE_TOKENS` are shared with make_synthetic.py.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable unicode character map used by byte-level BPE vocabularies."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(printable, chars)}


BYTE_TO_CHAR = bytes_to_unicode()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}

# ASCII approximation of the GPT-2 pre-tokenizer pattern.
_PRETOKENIZE = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""")

TOKEN_TYPE_CONTROL = 3


@dataclass
class GGUFVocab:
    tokens: list[str]
    token_types: list[int]
    merges: dict[tuple[str, str], int]
    eos_ids: list[int] = field(default_factory=list)
    bos_id: int | None = None

    @classmethod
    def load(cls, path: str | Path) -> "GGUFVocab":
        from gguf import GGUFReader
        r = GGUFReader(str(path), "r")

        def get(key, default=None):
            f = r.fields.get(key)
            return default if f is None else f.contents()

        model = get("tokenizer.ggml.model")
        if model != "gpt2":
            raise ValueError(f"only gpt2-style (byte-level BPE) vocabularies are supported, got {model!r}")
        tokens = get("tokenizer.ggml.tokens")
        types = get("tokenizer.ggml.token_type", [1] * len(tokens))
        merges_list = get("tokenizer.ggml.merges", [])
        merges = {}
        for rank, m in enumerate(merges_list):
            a, b = m.split(" ", 1)
            merges[(a, b)] = rank
        eos = [get("tokenizer.ggml.eos_token_id")]
        eot = get("tokenizer.ggml.eot_token_id")
        if eot is not None:
            eos.append(eot)
        return cls(tokens=tokens, token_types=list(types), merges=merges,
                   eos_ids=[int(e) for e in eos if e is not None], bos_id=get("tokenizer.ggml.bos_token_id"))

    def decode(self, ids: list[int]) -> str:
        out = bytearray()
        for i in ids:
            tok = self.tokens[i]
            if self.token_types[i] == TOKEN_TYPE_CONTROL:
                out += tok.encode("utf-8")
                continue
            for ch in tok:
                b = CHAR_TO_BYTE.get(ch)
                if b is None:
                    out += ch.encode("utf-8")
                else:
                    out.append(b)
        return out.decode("utf-8", errors="replace")

    def _bpe(self, word: str) -> list[str]:
        parts = list(word)
        while len(parts) > 1:
            best = None
            best_rank = None
            for i in range(len(parts) - 1):
                rank = self.merges.get((parts[i], parts[i + 1]))
                if rank is not None and (best_rank is None or rank < best_rank):
                    best, best_rank = i, rank
            if best is None:
                break
            parts[best:best + 2] = [parts[best] + parts[best + 1]]
        return parts

    def encode_simple(self, text: str) -> list[int]:
        index = {t: i for i, t in enumerate(self.tokens)}
        ids: list[int] = []
        for piece in _PRETOKENIZE.findall(text):
            mapped = "".join(BYTE_TO_CHAR[b] for b in piece.encode("utf-8"))
            for part in self._bpe(mapped):
                ids.append(index[part])
        return ids
