#!/usr/bin/env python3
"""Independent numpy reference forward pass for GGUF `llama` and `qwen2` decoder-only models.

This is Tandem's correctness oracle: it shares no code with the Swift engine. It reads a GGUF with
the pip `gguf` package, dequantizes every weight with `gguf.quants.dequantize` (lazily, one layer at a
time) and runs a plain float64 (default) forward pass over the whole token sequence:

    x = token_embd[tokens]
    for each layer:
        h = rmsnorm(x) * attn_norm
        q, k, v = h Wq^T (+bq), h Wk^T (+bk), h Wv^T (+bv)
        q, k = rope(q), rope(k)          # llama: "normal" adjacent pairs, qwen2: NEOX half split
        a = softmax(q k^T / sqrt(head_dim) + causal_mask) v   (grouped-query: q head h reads kv head h // group)
        x = x + a Wo^T (+bo)
        h = rmsnorm(x) * ffn_norm
        x = x + (silu(h Wgate^T) * (h Wup^T)) Wdown^T
    logits = (rmsnorm(x) * output_norm) Wout^T   # Wout = token_embd when output.weight is absent

Rope layouts follow llama.cpp's `llama_model_rope_type`: LLM_ARCH_LLAMA uses LLAMA_ROPE_TYPE_NORM
(pairs of consecutive values (2i, 2i+1); llama.cpp's converter permutes the HF q/k weights so this is
right for the GGUF), LLM_ARCH_QWEN2 uses LLAMA_ROPE_TYPE_NEOX (pairs (i, i + n_rot/2)).

CLI (see --help):
    python3 reference_forward.py --model M --tokens 1,2,3 [--all-positions]
        [--out-bin logits.f32] [--out-json logits.json] [--top 20]
prints (and optionally writes) a JSON summary; --out-bin writes raw little-endian float32 logits,
row-major [n_output_positions][n_vocab]. `--generate N` does greedy generation (full recompute).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

try:
    import gguf
    from gguf import GGUFReader, GGMLQuantizationType
    from gguf.quants import dequantize
except ImportError as error:  # pragma: no cover - reported to the caller (Swift tests skip visibly)
    print(f"reference_forward.py: the pip package `gguf` is required ({error})", file=sys.stderr)
    sys.exit(3)

SUPPORTED_ARCHS = ("llama", "qwen2")


@dataclass(frozen=True)
class HyperParams:
    arch: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ff: int
    n_vocab: int
    rms_eps: float
    rope_base: float
    rope_dims: int
    rope_neox: bool
    rope_scale: float  # positions are divided by this (linear scaling); 1 when absent


class GGUFModel:
    """Read-only view of a GGUF file with on-demand dequantization.

    Weights are dequantized when asked for and (unless `cache_weights`) not kept, so peak memory
    stays around one layer plus the embedding/output matrix.
    """

    def __init__(self, path: str | Path, dtype: Any = np.float64, cache_weights: bool = False):
        self.path = str(path)
        self.reader = GGUFReader(self.path, "r")
        self.dtype = dtype
        self.cache_weights = cache_weights
        self._cache: dict[str, np.ndarray] = {}
        self.tensors = {t.name: t for t in self.reader.tensors}
        self.hp = self._read_hparams()

    # -- metadata -------------------------------------------------------------------------------
    def field(self, key: str, default: Any = None) -> Any:
        f = self.reader.fields.get(key)
        if f is None:
            return default
        value = f.contents()
        return value

    def _read_hparams(self) -> HyperParams:
        arch = self.field("general.architecture")
        if arch not in SUPPORTED_ARCHS:
            raise SystemExit(f"unsupported architecture {arch!r} (supported: {SUPPORTED_ARCHS})")

        def req(name: str) -> Any:
            v = self.field(f"{arch}.{name}")
            if v is None:
                raise SystemExit(f"missing metadata {arch}.{name}")
            return v

        n_embd = int(req("embedding_length"))
        n_head = int(req("attention.head_count"))
        n_head_kv = int(self.field(f"{arch}.attention.head_count_kv", n_head))
        head_dim = int(self.field(f"{arch}.attention.key_length", n_embd // n_head))
        value_dim = int(self.field(f"{arch}.attention.value_length", head_dim))
        if value_dim != head_dim:
            raise SystemExit("key_length != value_length is not supported by the reference")
        emb = self.tensors["token_embd.weight"]
        n_vocab = int(emb.shape[1])
        scaling_type = self.field(f"{arch}.rope.scaling.type", "none")
        rope_scale = 1.0
        if scaling_type == "linear":
            rope_scale = float(self.field(f"{arch}.rope.scaling.factor", 1.0))
        elif scaling_type not in (None, "none"):
            raise SystemExit(f"rope scaling {scaling_type!r} is not supported by the reference")
        return HyperParams(
            arch=arch,
            n_layer=int(req("block_count")),
            n_embd=n_embd,
            n_head=n_head,
            n_head_kv=n_head_kv,
            head_dim=head_dim,
            n_ff=int(req("feed_forward_length")),
            n_vocab=n_vocab,
            rms_eps=float(req("attention.layer_norm_rms_epsilon")),
            rope_base=float(self.field(f"{arch}.rope.freq_base", 10000.0)),
            rope_dims=int(self.field(f"{arch}.rope.dimension_count", head_dim)),
            rope_neox=(arch == "qwen2"),
            rope_scale=rope_scale,
        )

    # -- tensors --------------------------------------------------------------------------------
    def has(self, name: str) -> bool:
        return name in self.tensors

    def weight(self, name: str) -> np.ndarray:
        """Dequantized tensor in numpy order: a GGUF [ne0=in, ne1=out] matrix becomes (out, in)."""
        if name in self._cache:
            return self._cache[name]
        t = self.tensors[name]
        w = dequantize(t.data, t.tensor_type)
        expected = tuple(int(d) for d in reversed(t.shape.tolist()))
        w = np.asarray(w).reshape(expected).astype(self.dtype, copy=False)
        if self.cache_weights:
            self._cache[name] = w
        return w

    def rows(self, name: str, ids: Sequence[int]) -> np.ndarray:
        """Dequantize only some rows of a 2-D tensor (used for the token embedding lookup)."""
        t = self.tensors[name]
        data = t.data
        picked = np.stack([np.asarray(data[i]) for i in ids])
        w = dequantize(picked, t.tensor_type)
        return np.asarray(w).reshape(len(ids), int(t.shape[0])).astype(self.dtype, copy=False)

    def tensor_types(self) -> dict[str, str]:
        return {name: t.tensor_type.name for name, t in self.tensors.items()}


# -- building blocks -------------------------------------------------------------------------------

def rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    ms = np.mean(x * x, axis=-1, keepdims=True)
    return x / np.sqrt(ms + eps) * w


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def apply_rope(x: np.ndarray, positions: np.ndarray, hp: HyperParams) -> np.ndarray:
    """x: (T, n_heads, head_dim). Rotates the first `rope_dims` values of each head."""
    n_rot = hp.rope_dims
    half = n_rot // 2
    inv_freq = hp.rope_base ** (-np.arange(half, dtype=np.float64) * 2.0 / n_rot)  # theta_i
    pos = positions.astype(np.float64) / hp.rope_scale
    angles = pos[:, None] * inv_freq[None, :]  # (T, half)
    cos = np.cos(angles)[:, None, :].astype(x.dtype)
    sin = np.sin(angles)[:, None, :].astype(x.dtype)
    out = x.copy()
    if hp.rope_neox:
        a = x[..., :half]
        b = x[..., half:n_rot]
    else:
        a = x[..., 0:n_rot:2]
        b = x[..., 1:n_rot:2]
    ra = a * cos - b * sin
    rb = a * sin + b * cos
    if hp.rope_neox:
        out[..., :half] = ra
        out[..., half:n_rot] = rb
    else:
        out[..., 0:n_rot:2] = ra
        out[..., 1:n_rot:2] = rb
    return out


def quantize_activations(x: np.ndarray, block: int = 32, qmax: int = 127) -> np.ndarray:
    """Round x to integers in [-qmax, qmax] with one absmax scale per `block` values: qmax 127 is
    llama.cpp's Q8_0/Q8_1/Q8_K activation quantization, 32767 the engine's int16 one (used only to
    *estimate* how far an engine doing that may drift)."""
    shape = x.shape
    if shape[-1] % block != 0:
        return x
    b = x.reshape(-1, block)
    s = np.abs(b).max(axis=-1, keepdims=True) / float(qmax)
    s = np.where(s == 0, 1.0, s)
    return (np.rint(b / s) * s).reshape(shape)


# Weight types whose integer kernels take int16 activations in the Swift engine (see MatMul.swift).
INT16_ACTIVATION_TYPES = (GGMLQuantizationType.Q4_0, GGMLQuantizationType.Q4_1, GGMLQuantizationType.Q5_1)


def linear(model: GGUFModel, x: np.ndarray, name: str, opts: "Options | None" = None) -> np.ndarray:
    if opts is not None and opts.q8_activations:
        t = model.tensors[f"{name}.weight"].tensor_type
        if t in INT16_ACTIVATION_TYPES:
            x = quantize_activations(x, 32, qmax=32767)
        elif t not in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
            k_quant = t.name.endswith("_K")
            x = quantize_activations(x, 256 if k_quant else 32)
    y = x @ model.weight(f"{name}.weight").T
    if model.has(f"{name}.bias") and not (opts is not None and "no_bias" in opts.mutations):
        y = y + model.weight(f"{name}.bias")
    return y


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, hp: HyperParams,
              opts: "Options | None" = None) -> np.ndarray:
    """Causal grouped-query attention over the whole sequence. q: (T, H, D), k/v: (T, Hkv, D)."""
    T = q.shape[0]
    group = hp.n_head // hp.n_head_kv
    scale = 1.0 / math.sqrt(hp.head_dim)
    mutations = opts.mutations if opts is not None else frozenset()
    mask = np.triu(np.ones((T, T), dtype=bool), k=1)
    if "no_causal_mask" in mutations:
        mask[:] = False
    out = np.empty_like(q)
    for h in range(hp.n_head):
        kv = (h % hp.n_head_kv) if "gqa_modulo" in mutations else h // group
        s = (q[:, h, :] @ k[:, kv, :].T) * scale
        s = np.where(mask, -np.inf, s)
        s = s - s.max(axis=-1, keepdims=True)
        p = np.exp(s)
        p = p / p.sum(axis=-1, keepdims=True)
        out[:, h, :] = p @ v[:, kv, :]
    return out


@dataclass(frozen=True)
class Options:
    """Test-only knobs. `q8_activations` rounds matmul inputs like the Swift engine's integer kernels
    do (int8 per 32 or per 256 values like llama.cpp; int16 per 32 for Q4_0/Q4_1/Q5_1 weights), to
    estimate the drift such an engine may legitimately show. `mutations` deliberately break one
    thing (see MUTATIONS) so the self-test can prove the synthetic models detect that bug."""
    q8_activations: bool = False
    mutations: frozenset = frozenset()


MUTATIONS = ("rope_swapped_layout", "rope_off", "rope_base_10000", "no_bias", "gqa_modulo",
             "no_causal_mask", "untied_ignores_output", "norm_weight_ignored")


def forward(model: GGUFModel, tokens: Sequence[int], all_positions: bool = False,
            opts: Options | None = None) -> np.ndarray:
    """Logits (float64/float32 per model.dtype) for the last position, shape (1, V), or all (T, V)."""
    hp = model.hp
    opts = opts or Options()
    mut = opts.mutations
    if "rope_swapped_layout" in mut:
        hp = replace(hp, rope_neox=not hp.rope_neox)
    T = len(tokens)
    if T == 0:
        raise ValueError("need at least one token")
    for t in tokens:
        if not 0 <= t < hp.n_vocab:
            raise ValueError(f"token id {t} out of range [0, {hp.n_vocab})")
    if "rope_base_10000" in mut:
        hp = replace(hp, rope_base=10000.0)
    positions = np.arange(T)

    def norm_weight(name: str) -> np.ndarray:
        if "norm_weight_ignored" in mut:
            return np.ones(hp.n_embd, dtype=model.dtype)
        return model.weight(name)

    x = model.rows("token_embd.weight", list(tokens))
    for il in range(hp.n_layer):
        p = f"blk.{il}"
        h = rms_norm(x, norm_weight(f"{p}.attn_norm.weight"), hp.rms_eps)
        q = linear(model, h, f"{p}.attn_q", opts).reshape(T, hp.n_head, hp.head_dim)
        k = linear(model, h, f"{p}.attn_k", opts).reshape(T, hp.n_head_kv, hp.head_dim)
        v = linear(model, h, f"{p}.attn_v", opts).reshape(T, hp.n_head_kv, hp.head_dim)
        if "rope_off" not in mut:
            q = apply_rope(q, positions, hp)
            k = apply_rope(k, positions, hp)
        a = attention(q, k, v, hp, opts).reshape(T, hp.n_head * hp.head_dim)
        x = x + linear(model, a, f"{p}.attn_output", opts)
        h = rms_norm(x, norm_weight(f"{p}.ffn_norm.weight"), hp.rms_eps)
        g = linear(model, h, f"{p}.ffn_gate", opts)
        u = linear(model, h, f"{p}.ffn_up", opts)
        x = x + linear(model, silu(g) * u, f"{p}.ffn_down", opts)
    if not all_positions:
        x = x[-1:]
    x = rms_norm(x, norm_weight("output_norm.weight"), hp.rms_eps)
    out_name = "output.weight" if model.has("output.weight") else "token_embd.weight"
    if "untied_ignores_output" in mut:
        out_name = "token_embd.weight"
    return linear(model, x, out_name.removesuffix(".weight"), opts)


# -- reporting ---------------------------------------------------------------------------------------

def summarize(logits: np.ndarray, positions: Sequence[int], top: int) -> list[dict[str, Any]]:
    results = []
    for row, pos in zip(logits, positions):
        order = np.argsort(-row, kind="stable")[:top]
        results.append({
            "position": int(pos),
            "argmax": int(order[0]),
            "top_ids": [int(i) for i in order],
            "top_logits": [float(row[i]) for i in order],
            "max": float(row.max()),
            "min": float(row.min()),
            "max_abs": float(np.abs(row).max()),
        })
    return results


def run(model_path: str, tokens: Sequence[int], all_positions: bool = False, top: int = 20,
        out_bin: str | None = None, dtype: Any = np.float64,
        opts: "Options | None" = None) -> tuple[dict[str, Any], np.ndarray]:
    model = GGUFModel(model_path, dtype=dtype)
    start = time.time()
    logits = forward(model, tokens, all_positions=all_positions, opts=opts)
    positions = list(range(len(tokens))) if all_positions else [len(tokens) - 1]
    report: dict[str, Any] = {
        "model": model_path,
        "arch": model.hp.arch,
        "n_vocab": model.hp.n_vocab,
        "n_layer": model.hp.n_layer,
        "tokens": [int(t) for t in tokens],
        "positions": positions,
        "compute_dtype": np.dtype(dtype).name,
        "seconds": round(time.time() - start, 3),
        "results": summarize(logits, positions, top),
    }
    if out_bin:
        np.ascontiguousarray(logits, dtype="<f4").tofile(out_bin)
        report["logits_file"] = out_bin
        report["logits_layout"] = "float32 little-endian, row-major [positions][n_vocab]"
    return report, logits


def greedy_generate(model_path: str, tokens: list[int], n: int, stop: set[int] | None = None) -> list[int]:
    """Greedy decoding with full recompute each step (slow but trivially correct)."""
    model = GGUFModel(model_path, dtype=np.float64, cache_weights=True)
    out = list(tokens)
    for _ in range(n):
        nxt = int(np.argmax(forward(model, out)[0]))
        out.append(nxt)
        if stop and nxt in stop:
            break
    return out[len(tokens):]


def run_batch(spec_path: str) -> dict[str, Any]:
    """Runs several jobs in one process (one model load per distinct file). The spec is a JSON list of
    {"model": path, "tokens": [ids], "out_bin": path, "all_positions": bool (default true),
     "q8_activations": bool (default false, see Options)}; each job writes its float32 logits to
    out_bin. Returns {"jobs": [report, ...]} (reports as in `run`)."""
    jobs = json.loads(Path(spec_path).read_text())
    models: dict[str, GGUFModel] = {}
    reports = []
    for job in jobs:
        path = job["model"]
        if path not in models:
            models.clear()  # keep at most one model in memory
            models[path] = GGUFModel(path, dtype=np.float64, cache_weights=True)
        model = models[path]
        tokens = [int(t) for t in job["tokens"]]
        all_positions = bool(job.get("all_positions", True))
        start = time.time()
        opts = Options(q8_activations=bool(job.get("q8_activations", False)))
        logits = forward(model, tokens, all_positions=all_positions, opts=opts)
        positions = list(range(len(tokens))) if all_positions else [len(tokens) - 1]
        np.ascontiguousarray(logits, dtype="<f4").tofile(job["out_bin"])
        reports.append({
            "model": path, "arch": model.hp.arch, "n_vocab": model.hp.n_vocab, "tokens": tokens,
            "positions": positions, "logits_file": job["out_bin"], "seconds": round(time.time() - start, 3),
            "results": summarize(logits, positions, int(job.get("top", 20))),
        })
    return {"jobs": reports}


def parse_tokens(text: str) -> list[int]:
    return [int(t) for t in text.replace(" ", "").split(",") if t]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="path to a GGUF file (llama or qwen2)")
    ap.add_argument("--batch", help="JSON job list (see run_batch); writes each job's logits, prints reports")
    ap.add_argument("--tokens", help="comma-separated token ids, e.g. 1,2,3")
    ap.add_argument("--prompt", help="ASCII text, tokenized with the simple BPE in gguf_vocab.py (validation only)")
    ap.add_argument("--all-positions", action="store_true", help="output logits for every position")
    ap.add_argument("--top", type=int, default=20, help="how many top logits to list per position")
    ap.add_argument("--out-bin", help="write float32 logits [positions][n_vocab] to this file")
    ap.add_argument("--out-json", help="write the JSON summary to this file (also printed)")
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    ap.add_argument("--generate", type=int, default=0, help="greedy-generate N tokens and print them")
    ap.add_argument("--q8-activations", action="store_true",
                    help="round matmul inputs to int8 per block like the engine's integer kernels (Options)")
    args = ap.parse_args(argv)

    if args.batch:
        text = json.dumps(run_batch(args.batch))
        if args.out_json:
            Path(args.out_json).write_text(text)
        print(text)
        return 0
    if not args.model:
        ap.error("--model is required (or --batch)")
    if args.prompt is not None:
        from gguf_vocab import GGUFVocab
        vocab = GGUFVocab.load(args.model)
        tokens = vocab.encode_simple(args.prompt)
    elif args.tokens is not None:
        tokens = parse_tokens(args.tokens)
        vocab = None
    else:
        ap.error("give --tokens or --prompt")

    if args.generate > 0:
        if vocab is None:
            try:
                from gguf_vocab import GGUFVocab
                vocab = GGUFVocab.load(args.model)
            except Exception:  # noqa: BLE001 - detokenizing is a convenience only
                vocab = None
        stop = set(vocab.eos_ids) if vocab is not None else None
        generated = greedy_generate(args.model, tokens, args.generate, stop)
        report = {"model": args.model, "tokens": tokens, "generated": generated}
        if vocab is not None:
            report["prompt_text"] = vocab.decode(tokens)
            report["generated_text"] = vocab.decode(generated)
        print(json.dumps(report, ensure_ascii=False))
        return 0

    dtype = np.float64 if args.dtype == "float64" else np.float32
    report, _ = run(args.model, tokens, args.all_positions, args.top, args.out_bin, dtype,
                    Options(q8_activations=args.q8_activations))
    text = json.dumps(report)
    if args.out_json:
        Path(args.out_json).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
