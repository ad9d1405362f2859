#!/usr/bin/env python3
"""Generates dequantization fixtures for TandemKernels tests using gguf-py's `gguf.quants`
as the independent reference implementation.

For every supported ggml type it writes random (but valid: finite half-precision scales) blocks to
`kernels-<TYPE>.bin` and their reference dequantization (little-endian float32) to
`kernels-<TYPE>.f32`.

usage: dequant_reference.py OUTPUT_DIR
"""
import sys
import os
import numpy as np
import gguf
import gguf.quants as q

T = gguf.GGMLQuantizationType

# Byte offsets of the half-precision scale fields inside one block, per type.
HALF_FIELDS = {
    "Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0],
    "Q2_K": [80, 82], "Q3_K": [108], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208],
}


def random_blocks(rng, name, nblocks):
    bs, tsize = gguf.GGML_QUANT_SIZES[getattr(T, name)]
    raw = rng.integers(0, 256, size=(nblocks, tsize), dtype=np.uint8)
    for off in HALF_FIELDS[name]:
        vals = (rng.uniform(0.001, 0.05, size=nblocks) * rng.choice([-1.0, 1.0], size=nblocks)).astype(np.float16)
        raw[:, off:off + 2] = vals.view(np.uint8).reshape(nblocks, 2)
    return raw


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20261121)
    for name in HALF_FIELDS:
        bs, _ = gguf.GGML_QUANT_SIZES[getattr(T, name)]
        nblocks = 4 if bs == 256 else 16
        raw = random_blocks(rng, name, nblocks)
        ref = q.dequantize(raw, getattr(T, name)).astype(np.float32).reshape(-1)
        raw.tofile(os.path.join(out, f"kernels-{name}.bin"))
        ref.tofile(os.path.join(out, f"kernels-{name}.f32"))
    # F16 / BF16: random finite values.
    vals = rng.standard_normal(256).astype(np.float32) * 3
    h = vals.astype(np.float16)
    h.view(np.uint16).tofile(os.path.join(out, "kernels-F16.bin"))
    q.dequantize(h.view(np.uint8), T.F16).astype(np.float32).reshape(-1).tofile(os.path.join(out, "kernels-F16.f32"))
    b = q.quantize(vals.reshape(1, -1), T.BF16)
    b.tofile(os.path.join(out, "kernels-BF16.bin"))
    q.dequantize(b, T.BF16).astype(np.float32).reshape(-1).tofile(os.path.join(out, "kernels-BF16.f32"))


if __name__ == "__main__":
    main()
