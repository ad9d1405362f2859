#!/usr/bin/env python3
"""llama.cpp on this machine, as a yardstick for Tandem's engine (not part of the test suite).

Uses llama.cpp's CPU library from the `llama-cpp-cffi` 0.4.42 wheel (llama.cpp of April 2025,
built for AVX2, with the Q4_K 8x8 CPU repack), called through its cffi module, so nothing has to
be compiled except a 3-line shim: the library wants `__cxa_call_terminate` from GCC 14's
libstdc++, which Debian 12 lacks. Setup (download, extract, shim) happens on first use into
`~/.cache/tandem/llama-cpp`.

    python3 Tests/Reference/llama_cpp_reference.py bench MODEL.gguf
        decode (batch 1), 1 sequence x 8 / 32 new positions with logits for every position and
        for the last only, 2 threads: the rows of `tandem bench engine`.
    python3 Tests/Reference/llama_cpp_reference.py perplexity MODEL.gguf --file F [--ctx 512] [--chunks N]
        llama-perplexity's method (the one `tandem perplexity` follows).
    python3 Tests/Reference/llama_cpp_reference.py logits MODEL.gguf --tokens 1,2,3 --out F.f32
        float32 logits of every position (to compare with Tests/Reference/compare.py).
"""
import argparse
import importlib.util
import math
import os
import subprocess
import sys
import time
import zipfile

import numpy as np

WHEEL = "llama_cpp_cffi==0.4.42"
SO_NAME = "_llama_cpp_cpu.cpython-311-x86_64-linux-gnu.so"
CACHE = os.path.expanduser(os.environ.get("TANDEM_LLAMA_CPP", "~/.cache/tandem/llama-cpp"))
SHIM = """#include <exception>
extern "C" void *__cxa_begin_catch(void *) noexcept;
extern "C" [[noreturn]] void __cxa_call_terminate(void *e) noexcept { if (e) __cxa_begin_catch(e); std::terminate(); }
"""


def setup() -> tuple[str, str]:
    so = os.path.join(CACHE, SO_NAME)
    shim = os.path.join(CACHE, "libcxa_shim.so")
    if not os.path.exists(so):
        os.makedirs(CACHE, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.11", "-d", CACHE, WHEEL], check=True)
        wheel = next(f for f in os.listdir(CACHE) if f.endswith(".whl"))
        with zipfile.ZipFile(os.path.join(CACHE, wheel)) as z:
            with z.open(f"llama/{SO_NAME}") as src, open(so + ".partial", "wb") as dst:
                dst.write(src.read())
        os.rename(so + ".partial", so)
    if not os.path.exists(shim):
        src = os.path.join(CACHE, "shim.cpp")
        with open(src, "w") as f:
            f.write(SHIM)
        subprocess.run(["g++", "-shared", "-fPIC", "-O2", src, "-o", shim], check=True)
    return so, shim


def load_library():
    so, shim = setup()
    if shim not in os.environ.get("LD_PRELOAD", ""):
        env = dict(os.environ, LD_PRELOAD=shim)
        os.execve(sys.executable, [sys.executable] + sys.argv, env)
    spec = importlib.util.spec_from_file_location("_llama_cpp_cpu", so)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m.ffi, m.lib


class Llama:
    def __init__(self, path: str, n_ctx: int, threads: int):
        self.ffi, self.lib = load_library()
        lib = self.lib
        lib.llama_backend_init()
        mp = lib.llama_model_default_params()
        mp.n_gpu_layers = 0
        t0 = time.perf_counter()
        self.model = lib.llama_model_load_from_file(path.encode(), mp)
        if self.model == self.ffi.NULL:
            raise SystemExit(f"llama.cpp could not load {path}")
        cp = lib.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = cp.n_ubatch = min(n_ctx, 512)
        cp.n_threads = cp.n_threads_batch = threads
        self.ctx = lib.llama_init_from_model(self.model, cp)
        self.load_seconds = time.perf_counter() - t0
        self.vocab = lib.llama_model_get_vocab(self.model)
        self.n_vocab = lib.llama_vocab_n_tokens(self.vocab)
        self.batch = lib.llama_batch_init(cp.n_batch, 0, 1)

    def decode(self, tokens, start: int, logits_all: bool):
        b = self.batch
        n = len(tokens)
        for i, t in enumerate(tokens):
            b.token[i] = t
            b.pos[i] = start + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            b.logits[i] = 1 if (logits_all or i == n - 1) else 0
        b.n_tokens = n
        rc = self.lib.llama_decode(self.ctx, b)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")

    def logits(self, i: int) -> np.ndarray:
        p = self.lib.llama_get_logits_ith(self.ctx, i)
        return np.frombuffer(self.ffi.buffer(p, self.n_vocab * 4), dtype=np.float32)

    def rollback(self, pos: int):
        self.lib.llama_kv_self_seq_rm(self.ctx, 0, pos, -1)

    def tokenize(self, text: str) -> list[int]:
        data = text.encode()
        add_bos = bool(self.lib.llama_vocab_get_add_bos(self.vocab))
        cap = len(data) + 16
        buf = self.ffi.new("llama_token[]", cap)
        n = self.lib.llama_tokenize(self.vocab, data, len(data), buf, cap, add_bos, False)
        return [buf[i] for i in range(n)], add_bos


def bench(args):
    ll = Llama(args.model, 1024, args.threads)
    nv = ll.n_vocab

    def tok(i):
        return (i * 7919 + 13) % min(nv, 30000) + 100

    ll.decode([tok(i) for i in range(16)], 0, False)
    pos = 16
    nxt = int(ll.logits(-1).argmax())
    t0 = time.perf_counter()
    for _ in range(args.decode_tokens):
        ll.decode([nxt], pos, False)
        pos += 1
        nxt = int(ll.logits(-1).argmax())
    rows = [("decode (batch 1)", args.decode_tokens / (time.perf_counter() - t0))]

    def batched(n, logits_all):
        toks = [tok(pos + i) for i in range(n)]
        ll.decode(toks, pos, logits_all)
        ll.rollback(pos)
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            ll.decode(toks, pos, logits_all)
            ll.rollback(pos)
        return n * args.repeats / (time.perf_counter() - t0)

    rows += [("1 sequence x 8 new positions, all logits", batched(8, True)),
             ("1 sequence x 32 new positions, all logits", batched(32, True)),
             ("1 seq x 8 positions, last logits", batched(8, False)),
             ("1 seq x 32 positions, last logits", batched(32, False))]
    print(f"llama.cpp (llama-cpp-cffi 0.4.42), {args.threads} threads, load {ll.load_seconds:.2f} s")
    print("  " + ffi_info(ll))
    for label, rate in rows:
        print(f"{label:46s}{rate:8.1f} tok/s")


def ffi_info(ll) -> str:
    return ll.ffi.string(ll.lib.llama_print_system_info()).decode().strip()


def perplexity(args):
    ll = Llama(args.model, args.ctx, args.threads)
    with open(args.file, encoding="utf-8") as f:
        tokens, add_bos = ll.tokenize(f.read())
    n_ctx = args.ctx
    n_chunks = len(tokens) // n_ctx
    if args.chunks:
        n_chunks = min(n_chunks, args.chunks)
    bos = ll.lib.llama_vocab_bos(ll.vocab)
    print(f"perplexity: {len(tokens)} tokens, {n_chunks} chunks of {n_ctx}, add_bos={add_bos}")
    nll, count = 0.0, 0
    first = n_ctx // 2
    for c in range(n_chunks):
        chunk = tokens[c * n_ctx:(c + 1) * n_ctx]
        if add_bos:
            chunk[0] = bos
        ll.rollback(0)
        for s in range(0, n_ctx, 512):
            ll.decode(chunk[s:s + 512], s, True)
            for r in range(min(512, n_ctx - s)):
                j = s + r
                if first <= j < n_ctx - 1:
                    lg = ll.logits(r).astype(np.float64)
                    mx = lg.max()
                    nll -= lg[chunk[j + 1]] - mx - math.log(np.exp(lg - mx).sum())
                    count += 1
        print(f"[{c + 1}]{math.exp(nll / count):.4f},", end="", flush=True)
    print(f"\nFinal estimate: PPL = {math.exp(nll / count):.4f} ({count} scored tokens)")


def logits(args):
    toks = [int(t) for t in args.tokens.split(",")]
    ll = Llama(args.model, max(64, len(toks) + 8), args.threads)
    ll.decode(toks, 0, True)
    np.stack([ll.logits(i).copy() for i in range(len(toks))]).astype(np.float32).tofile(args.out)
    print(f"wrote {len(toks)} x {ll.n_vocab} logits to {args.out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench")
    b.add_argument("model")
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--decode-tokens", type=int, default=48)
    b.add_argument("--repeats", type=int, default=4)
    p = sub.add_parser("perplexity")
    p.add_argument("model")
    p.add_argument("--file", required=True)
    p.add_argument("--ctx", type=int, default=512)
    p.add_argument("--chunks", type=int)
    p.add_argument("--threads", type=int, default=2)
    g = sub.add_parser("logits")
    g.add_argument("model")
    g.add_argument("--tokens", required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    {"bench": bench, "perplexity": perplexity, "logits": logits}[args.cmd](args)


if __name__ == "__main__":
    main()
