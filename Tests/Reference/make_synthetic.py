#!/usr/bin/env python3
"""Write tiny, deterministic synthetic GGUF models (`qwen2` and `llama`) for engine tests.

Each model is a real decoder-only transformer with random weights, small enough to run in
milliseconds, in one of several tensor types so every dequantization path of the engine gets
checked against reference_forward.py:

    F32 F16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K   (all 2-D weights in that type)
    Q4_K_M                                             (mix like llama.cpp's Q4_K_M: Q4_K, Q6_K for
                                                        attn_v / ffn_down / token_embd / output)

Norm weights and biases are always F32 (as in llama.cpp files). The underlying float weights depend
only on (arch, seed), not on the tensor type, so all types of one arch are quantizations of the
same model. K-quant blocks are packed by kquant_pack.py (gguf cannot quantize them).

Shapes (defaults): 2 layers, width 256 (K-quant rows must be multiples of 256), 4 query heads /
2 KV heads (head_dim 64), FFN 512, vocabulary 320 = 256 byte tokens + 61 BPE merges + 3 control
tokens (<|endoftext|>, <|im_start|>, <|im_end|>), gpt2-style tokenizer metadata.

- qwen2: q/k/v biases, separate output.weight, NEOX rope, eps 1e-6, rope base 1e6.
- llama: no biases, output tied to token_embd (no output.weight), normal rope, eps 1e-5, base 1e5.
- draft (--draft): a `qwen2` model with the same vocabulary whose weights are the target's mixed
  with independent noise (`--draft-noise`, default 0.2), so the pair agrees on roughly half of the
  greedy tokens (speculative rejections happen, and so do acceptances).

Usage:
    python3 make_synthetic.py --out-dir DIR [--arch qwen2,llama] [--types F32,Q8_0,...] [--draft]
        [--seed 1234]
prints a JSON list of {path, arch, type, role} for the files written.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gguf  # noqa: E402
from gguf import GGMLQuantizationType, LlamaFileType, TokenType  # noqa: E402
from gguf.quants import quantize  # noqa: E402

from gguf_vocab import BYTE_TO_CHAR  # noqa: E402
from kquant_pack import PACKERS  # noqa: E402

ALL_TYPES = ["F32", "F16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K", "Q4_K_M"]
DEFAULT_TYPES = ALL_TYPES

FILE_TYPES = {
    "F32": LlamaFileType.ALL_F32, "F16": LlamaFileType.MOSTLY_F16, "Q8_0": LlamaFileType.MOSTLY_Q8_0,
    "Q4_0": LlamaFileType.MOSTLY_Q4_0, "Q4_1": LlamaFileType.MOSTLY_Q4_1, "Q5_0": LlamaFileType.MOSTLY_Q5_0,
    "Q5_1": LlamaFileType.MOSTLY_Q5_1, "Q4_K": LlamaFileType.MOSTLY_Q4_K_S,
    "Q5_K": LlamaFileType.MOSTLY_Q5_K_S, "Q6_K": LlamaFileType.MOSTLY_Q6_K,
    "Q4_K_M": LlamaFileType.MOSTLY_Q4_K_M,
}

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
MERGE_CORPUS = (
    "the quick brown fox jumps over the lazy dog. the capital of france is paris. "
    "def main(): return the answer to the question. hello world, hello there. "
    "speculative decoding drafts tokens and the target verifies them in one batch. "
    "in the beginning there was the token, and the token was the end of the text."
)


@dataclass(frozen=True)
class Config:
    arch: str
    n_layer: int = 2
    n_embd: int = 256
    n_head: int = 4
    n_head_kv: int = 2
    n_ff: int = 512
    n_merges: int = 61
    rope_base: float = 10000.0
    rms_eps: float = 1e-6
    biases: bool = True
    tied_output: bool = False
    context_length: int = 2048
    # Weight scales. Chosen (see README.md) so that int8 activation rounding moves the logits by
    # well under 1% of their range while each deliberate bug moves them by several percent.
    emb_std: float = 1.0
    qk_gain: float = 1.5
    out_gain: float = 1.0
    ffn_gain: float = 0.5

    @property
    def n_vocab(self) -> int:
        return 256 + self.n_merges + len(SPECIAL_TOKENS)

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


def config_for(arch: str) -> Config:
    if arch == "qwen2":
        return Config(arch="qwen2", rope_base=1000000.0, rms_eps=1e-6, biases=True, tied_output=False,
                      emb_std=2.0)
    if arch == "llama":
        return Config(arch="llama", rope_base=100000.0, rms_eps=1e-5, biases=False, tied_output=True)
    raise ValueError(f"unknown arch {arch}")


# -- tokenizer ---------------------------------------------------------------------------------------

def build_vocab(n_merges: int) -> tuple[list[str], list[int], list[str]]:
    """Byte tokens (id == byte value), then `n_merges` BPE merges learnt greedily on a fixed corpus,
    then the control tokens. Deterministic (ties broken lexicographically)."""
    tokens = [BYTE_TO_CHAR[b] for b in range(256)]
    words = [[BYTE_TO_CHAR[b] for b in (" " + w if i else w).encode()]
             for i, w in enumerate(MERGE_CORPUS.split(" "))]
    merges: list[str] = []
    for _ in range(n_merges):
        pairs: Counter[tuple[str, str]] = Counter()
        for w in words:
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += 1
        if not pairs:
            raise ValueError("merge corpus exhausted")
        (a, b), _count = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        merges.append(f"{a} {b}")
        tokens.append(a + b)
        for w in words:
            i = 0
            while i < len(w) - 1:
                if w[i] == a and w[i + 1] == b:
                    w[i:i + 2] = [a + b]
                i += 1
    types = [int(TokenType.NORMAL)] * len(tokens) + [int(TokenType.CONTROL)] * len(SPECIAL_TOKENS)
    tokens += SPECIAL_TOKENS
    return tokens, types, merges


# -- weights -----------------------------------------------------------------------------------------

def float_weights(cfg: Config, seed: int) -> dict[str, np.ndarray]:
    """Random float32 weights in numpy (out, in) order, keyed by GGUF tensor name."""
    rng = np.random.default_rng(seed)
    d, f, hd = cfg.n_embd, cfg.n_ff, cfg.head_dim
    qd, kvd = cfg.n_head * hd, cfg.n_head_kv * hd

    def mat(out_dim: int, in_dim: int, gain: float = 1.0) -> np.ndarray:
        return (rng.standard_normal((out_dim, in_dim)) * gain / np.sqrt(in_dim)).astype(np.float32)

    def norm(n: int) -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    w: dict[str, np.ndarray] = {}
    w["token_embd.weight"] = (rng.standard_normal((cfg.n_vocab, d)) * cfg.emb_std).astype(np.float32)
    for il in range(cfg.n_layer):
        p = f"blk.{il}"
        w[f"{p}.attn_norm.weight"] = norm(d)
        w[f"{p}.attn_q.weight"] = mat(qd, d, cfg.qk_gain)   # larger q/k gain -> peakier attention
        w[f"{p}.attn_k.weight"] = mat(kvd, d, cfg.qk_gain)
        w[f"{p}.attn_v.weight"] = mat(kvd, d)
        if cfg.biases:
            w[f"{p}.attn_q.bias"] = (0.2 * rng.standard_normal(qd)).astype(np.float32)
            w[f"{p}.attn_k.bias"] = (0.2 * rng.standard_normal(kvd)).astype(np.float32)
            w[f"{p}.attn_v.bias"] = (0.2 * rng.standard_normal(kvd)).astype(np.float32)
        w[f"{p}.attn_output.weight"] = mat(d, qd)
        w[f"{p}.ffn_norm.weight"] = norm(d)
        w[f"{p}.ffn_gate.weight"] = mat(f, d, cfg.ffn_gain)
        w[f"{p}.ffn_up.weight"] = mat(f, d, cfg.ffn_gain)
        w[f"{p}.ffn_down.weight"] = mat(d, f, cfg.ffn_gain)
    w["output_norm.weight"] = norm(d)
    if not cfg.tied_output:
        w["output.weight"] = mat(cfg.n_vocab, d, cfg.out_gain)
    return w


def mix_weights(target: dict[str, np.ndarray], noise: float, seed: int) -> dict[str, np.ndarray]:
    """Draft weights: sqrt(1 - a^2) * target + a * independent noise of the same per-tensor spread."""
    rng = np.random.default_rng(seed)
    keep = np.sqrt(max(0.0, 1.0 - noise * noise))
    out = {}
    for name, t in target.items():
        if name.endswith("norm.weight"):
            out[name] = t.copy()
            continue
        spread = float(np.std(t)) or 1.0
        out[name] = (keep * t + noise * spread * rng.standard_normal(t.shape)).astype(np.float32)
    return out


def tensor_type_for(name: str, ttype: str) -> str:
    if name.endswith("norm.weight") or name.endswith(".bias"):
        return "F32"
    if ttype == "Q4_K_M":
        if name in ("token_embd.weight", "output.weight") or name.endswith("attn_v.weight") \
                or name.endswith("ffn_down.weight"):
            return "Q6_K"
        return "Q4_K"
    return ttype


def encode_tensor(t: np.ndarray, ttype: str) -> tuple[np.ndarray, GGMLQuantizationType | None]:
    if ttype == "F32":
        return t.astype(np.float32), None
    if ttype == "F16":
        return t.astype(np.float16), None
    if ttype in PACKERS:
        return PACKERS[ttype](t), GGMLQuantizationType[ttype]
    qt = GGMLQuantizationType[ttype]
    return quantize(t, qt), qt


# -- file --------------------------------------------------------------------------------------------

def write_model(path: Path, cfg: Config, weights: dict[str, np.ndarray], ttype: str, name: str) -> None:
    arch = cfg.arch
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(name)
    w.add_file_type(int(FILE_TYPES[ttype]))
    w.add_context_length(cfg.context_length)
    w.add_embedding_length(cfg.n_embd)
    w.add_block_count(cfg.n_layer)
    w.add_feed_forward_length(cfg.n_ff)
    w.add_head_count(cfg.n_head)
    w.add_head_count_kv(cfg.n_head_kv)
    w.add_rope_freq_base(cfg.rope_base)
    w.add_rope_dimension_count(cfg.head_dim)
    w.add_layer_norm_rms_eps(cfg.rms_eps)
    w.add_vocab_size(cfg.n_vocab)

    tokens, types, merges = build_vocab(cfg.n_merges)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2" if arch == "qwen2" else "smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    eot = tokens.index("<|endoftext|>")
    im_end = tokens.index("<|im_end|>")
    w.add_bos_token_id(eot)
    w.add_eos_token_id(im_end)
    w.add_pad_token_id(eot)
    w.add_add_bos_token(False)
    w.add_chat_template(CHATML_TEMPLATE)

    for tname, t in weights.items():
        data, raw = encode_tensor(t, tensor_type_for(tname, ttype))
        if raw is None:
            w.add_tensor(tname, data)
        else:
            w.add_tensor(tname, data, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def generate(out_dir: Path, archs: list[str], types: list[str], seed: int, draft: bool,
             draft_noise: float) -> list[dict[str, str]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    arch_seed = {"qwen2": seed, "llama": seed + 1}
    for arch in archs:
        cfg = config_for(arch)
        weights = float_weights(cfg, arch_seed[arch])
        for ttype in types:
            path = out_dir / f"synthetic-{arch}-{ttype}.gguf"
            write_model(path, cfg, weights, ttype, f"tandem-synthetic-{arch}")
            written.append({"path": str(path), "arch": arch, "type": ttype, "role": "target"})
    if draft:
        cfg = config_for("qwen2")
        weights = mix_weights(float_weights(cfg, arch_seed["qwen2"]), draft_noise, seed + 100)
        for ttype in types:
            path = out_dir / f"synthetic-qwen2-draft-{ttype}.gguf"
            write_model(path, cfg, weights, ttype, "tandem-synthetic-qwen2-draft")
            written.append({"path": str(path), "arch": "qwen2", "type": ttype, "role": "draft"})
    return written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--arch", default="qwen2,llama", help="comma list of qwen2, llama")
    ap.add_argument("--types", default=",".join(DEFAULT_TYPES), help=f"comma list from {ALL_TYPES}")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--draft", action="store_true", help="also write qwen2 draft models (same vocab)")
    ap.add_argument("--draft-only", action="store_true", help="write only the draft models")
    ap.add_argument("--draft-noise", type=float, default=0.2)
    args = ap.parse_args()
    types = [t for t in args.types.split(",") if t]
    for t in types:
        if t not in ALL_TYPES:
            ap.error(f"unknown type {t}; known: {ALL_TYPES}")
    archs = [] if args.draft_only else [a for a in args.arch.split(",") if a]
    written = generate(Path(args.out_dir), archs, types, args.seed, args.draft or args.draft_only,
                       args.draft_noise)
    print(json.dumps(written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
