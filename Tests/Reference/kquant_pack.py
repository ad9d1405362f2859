#!/usr/bin/env python3
"""Simple quantizers that pack float rows into valid ggml K-quant blocks (Q4_K, Q5_K, Q6_K).

The pip `gguf` package can dequantize K-quants but not quantize them. The synthetic test models only
need *valid* blocks with sane f16 scales (both the Swift engine and the numpy reference dequantize the
same bytes), so this uses a plain min/max rounding scheme instead of llama.cpp's error-minimizing
search. The byte layouts match ggml's block_q4_K / block_q5_K / block_q6_K (QK_K = 256) and are
verified against `gguf.quants.dequantize` by `self_test()` (run this file directly).
"""
from __future__ import annotations

import numpy as np

QK_K = 256


def _f16(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16)


def _blocks(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    if rows.shape[-1] % QK_K != 0:
        raise ValueError(f"row length {rows.shape[-1]} is not a multiple of {QK_K}")
    return rows.reshape(-1, QK_K)


def _pack_scales_k4(sc: np.ndarray, mn: np.ndarray) -> np.ndarray:
    """Pack 8 six-bit scales and 8 six-bit mins per block into ggml's 12-byte `scales` field."""
    sc = sc.astype(np.uint8)
    mn = mn.astype(np.uint8)
    out = np.zeros((sc.shape[0], 12), dtype=np.uint8)
    out[:, 0:4] = (sc[:, 0:4] & 0x3F) | ((sc[:, 4:8] >> 4) << 6)
    out[:, 4:8] = (mn[:, 0:4] & 0x3F) | ((mn[:, 4:8] >> 4) << 6)
    out[:, 8:12] = (sc[:, 4:8] & 0x0F) | ((mn[:, 4:8] & 0x0F) << 4)
    return out


def _affine_k(blocks: np.ndarray, qmax: int):
    """Shared scale/min search of Q4_K / Q5_K: 8 sub-blocks of 32, q in [0, qmax]."""
    n = blocks.shape[0]
    sub = blocks.reshape(n, 8, 32)
    lo = np.minimum(sub.min(axis=-1), 0.0)           # ggml keeps mins <= 0
    hi = sub.max(axis=-1)
    scale = (hi - lo) / qmax                           # (n, 8)
    mins = -lo                                         # >= 0
    d = _f16(scale.max(axis=-1) / 63.0)                # (n,)
    dmin = _f16(mins.max(axis=-1) / 63.0)
    d32 = d.astype(np.float32)[:, None]
    dmin32 = dmin.astype(np.float32)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(d32 > 0, np.clip(np.rint(scale / d32), 0, 63), 0).astype(np.uint8)
        mq = np.where(dmin32 > 0, np.clip(np.rint(mins / dmin32), 0, 63), 0).astype(np.uint8)
        eff_d = (d32 * sc)[:, :, None]
        eff_m = (dmin32 * mq)[:, :, None]
        q = np.where(eff_d > 0, np.rint((sub + eff_m) / eff_d), 0)
    q = np.clip(q, 0, qmax).astype(np.uint8)           # (n, 8, 32)
    return d, dmin, sc, mq, q


def quantize_q4_k(rows: np.ndarray) -> np.ndarray:
    blocks = _blocks(rows)
    n = blocks.shape[0]
    d, dmin, sc, mq, q = _affine_k(blocks, 15)
    qs = (q[:, 0::2, :] | (q[:, 1::2, :] << 4)).reshape(n, 128)   # chunk i holds sub-blocks 2i, 2i+1
    out = np.concatenate([
        d.view(np.uint8).reshape(n, 2), dmin.view(np.uint8).reshape(n, 2),
        _pack_scales_k4(sc, mq), qs], axis=1)
    assert out.shape[1] == 144
    return out.reshape(*np.asarray(rows).shape[:-1], -1)


def quantize_q5_k(rows: np.ndarray) -> np.ndarray:
    blocks = _blocks(rows)
    n = blocks.shape[0]
    d, dmin, sc, mq, q = _affine_k(blocks, 31)
    low = q & 0x0F
    high = (q >> 4) & 0x01                                           # (n, 8, 32)
    qs = (low[:, 0::2, :] | (low[:, 1::2, :] << 4)).reshape(n, 128)
    qh = np.zeros((n, 32), dtype=np.uint8)
    for j in range(8):
        qh |= (high[:, j, :] << j).astype(np.uint8)
    out = np.concatenate([
        d.view(np.uint8).reshape(n, 2), dmin.view(np.uint8).reshape(n, 2),
        _pack_scales_k4(sc, mq), qh, qs], axis=1)
    assert out.shape[1] == 176
    return out.reshape(*np.asarray(rows).shape[:-1], -1)


def quantize_q6_k(rows: np.ndarray) -> np.ndarray:
    blocks = _blocks(rows)
    n = blocks.shape[0]
    sub = blocks.reshape(n, 16, 16)
    scale = np.abs(sub).max(axis=-1) / 31.0                           # (n, 16)
    d = _f16(scale.max(axis=-1) / 127.0)
    d32 = d.astype(np.float32)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(d32 > 0, np.clip(np.rint(scale / d32), -128, 127), 0).astype(np.int8)
        eff = (d32 * sc.astype(np.float32))[:, :, None]
        q = np.where(eff != 0, np.rint(sub / eff), 0)
    q = (np.clip(q, -32, 31) + 32).astype(np.uint8).reshape(n, 8, 32)  # group g = element // 32
    ql = np.zeros((n, 128), dtype=np.uint8)
    qh = np.zeros((n, 64), dtype=np.uint8)
    for g in range(8):
        h, r = divmod(g, 4)
        s, t = divmod(r, 2)
        lo = h * 64 + t * 32
        ql[:, lo:lo + 32] |= ((q[:, g, :] & 0x0F) << (4 * s)).astype(np.uint8)
        qh[:, h * 32:h * 32 + 32] |= (((q[:, g, :] >> 4) & 0x03) << (2 * r)).astype(np.uint8)
    out = np.concatenate([ql, qh, sc.view(np.uint8), d.view(np.uint8).reshape(n, 2)], axis=1)
    assert out.shape[1] == 210
    return out.reshape(*np.asarray(rows).shape[:-1], -1)


PACKERS = {"Q4_K": quantize_q4_k, "Q5_K": quantize_q5_k, "Q6_K": quantize_q6_k}


def self_test(seed: int = 0) -> dict[str, float]:
    """Round-trip random rows through our packer and gguf's dequantizer; returns max rel error."""
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((8, 512)).astype(np.float32) * rng.uniform(0.1, 3.0, (8, 1)).astype(np.float32)
    x[0, :256] = 0.0              # an all-zero block must stay valid
    x[1, :] = np.abs(x[1, :])     # all-positive rows (min clamps to 0)
    errors = {}
    bounds = {"Q4_K": 0.12, "Q5_K": 0.06, "Q6_K": 0.03}
    for name, pack in PACKERS.items():
        packed = pack(x)
        back = dequantize(packed, GGMLQuantizationType[name]).reshape(x.shape)
        err = float(np.max(np.abs(back - x)) / np.max(np.abs(x)))
        errors[name] = err
        if not err < bounds[name]:
            raise AssertionError(f"{name} round trip error {err} exceeds {bounds[name]}")
        if not np.all(back[0, :256] == 0):
            raise AssertionError(f"{name}: zero block did not stay zero")
    return errors


if __name__ == "__main__":
    print(self_test())
