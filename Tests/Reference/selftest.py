#!/usr/bin/env python3
"""Self-test of the Python reference (no Swift involved). Prints one line per check and a final
`N passed, N failed` line; exits non-zero on any failure.

Checks:
- kquant_pack round-trips through gguf's dequantizer (K-quant byte layouts are right);
- make_synthetic is deterministic (same seed -> byte-identical files) and every type loads;
- the reference forward on synthetic models: float32 compute equals float64 compute (~1e-6);
  every quantized type stays close to the F32 model's greedy token at most positions;
- the comparison metric (see compare_logits) can tell a bug from rounding: each deliberate
  mutation (wrong rope layout/base, missing rope, dropped biases, wrong GQA mapping, no causal mask,
  ignored norm weights, tied/untied mixup) moves the logits by >= 3x the tolerance, while the
  drift an int8-activation engine would show stays below the tolerance;
- the draft model agrees with its target on some but not all greedy tokens;
- SmolLM2-135M (when present): greedy "The capital of France is" continues with " Paris".

Usage: python3 selftest.py [--smollm PATH] [--skip-smollm]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import kquant_pack  # noqa: E402
import make_synthetic as ms  # noqa: E402
import reference_forward as rf  # noqa: E402
from compare import compare_logits, DEFAULT_TOLERANCE  # noqa: E402

RESULTS: list[tuple[str, bool, str]] = []


def check(name):
    def wrap(fn):
        def run(*args, **kwargs):
            try:
                detail = fn(*args, **kwargs) or ""
                RESULTS.append((name, True, detail))
                print(f"PASS {name} {detail}", flush=True)
            except Exception as error:  # noqa: BLE001
                RESULTS.append((name, False, str(error)))
                print(f"FAIL {name}: {error}", flush=True)
                traceback.print_exc()
        return run
    return wrap


TOKENS = [int(t) for t in np.random.default_rng(7).integers(0, 317, 24)]


@check("kquant round trip")
def t_kquant():
    return str({k: round(v, 4) for k, v in kquant_pack.self_test().items()})


@check("synthetic determinism")
def t_determinism(tmp: Path):
    a, b = tmp / "a", tmp / "b"
    ms.generate(a, ["qwen2"], ["Q4_K", "Q8_0"], 1234, True, 0.2)
    ms.generate(b, ["qwen2"], ["Q4_K", "Q8_0"], 1234, True, 0.2)
    for f in sorted(a.iterdir()):
        ha = hashlib.sha256(f.read_bytes()).hexdigest()
        hb = hashlib.sha256((b / f.name).read_bytes()).hexdigest()
        if ha != hb:
            raise AssertionError(f"{f.name} differs between two runs")
    return f"{len(list(a.iterdir()))} files identical"


@check("f32 compute == f64 compute")
def t_precision(files: dict):
    worst = 0.0
    for arch in ("qwen2", "llama"):
        path = files[(arch, "Q4_K", "target")]
        hi = rf.forward(rf.GGUFModel(path), TOKENS, True)
        lo = rf.forward(rf.GGUFModel(path, dtype=np.float32), TOKENS, True)
        worst = max(worst, compare_logits(lo, hi).max_rel_error)
    if worst > 1e-4:
        raise AssertionError(f"float32 vs float64 rel error {worst}")
    return f"max rel error {worst:.2e}"


@check("quantized types track F32")
def t_types(files: dict):
    lines = []
    for arch in ("qwen2", "llama"):
        base = rf.forward(rf.GGUFModel(files[(arch, "F32", "target")]), TOKENS, True)
        for t in ms.ALL_TYPES:
            logits = rf.forward(rf.GGUFModel(files[(arch, t, "target")]), TOKENS, True)
            agree = float(np.mean(logits.argmax(-1) == base.argmax(-1)))
            lines.append(f"{arch}/{t}:{agree:.2f}")
            if agree < 0.5:
                raise AssertionError(f"{arch}/{t} agrees with F32 on only {agree:.2f} of positions")
    return " ".join(lines)


@check("mutations detected, int8 drift tolerated")
def t_mutations(files: dict):
    lines = []
    for arch in ("qwen2", "llama"):
        for t in ("Q8_0", "Q4_K", "Q6_K", "Q4_0"):
            model = rf.GGUFModel(files[(arch, t, "target")], cache_weights=True)
            exact = rf.forward(model, TOKENS, True)
            q8 = rf.forward(model, TOKENS, True, rf.Options(q8_activations=True))
            drift = compare_logits(q8, exact).max_rel_error
            lines.append(f"{arch}/{t} int8-drift {drift:.4f}")
            if drift > DEFAULT_TOLERANCE * 0.75:
                raise AssertionError(f"{arch}/{t}: int8 activation drift {drift:.4f} too close to tolerance")
            if t != "Q4_K":
                continue
            for mutation in rf.MUTATIONS:
                if mutation == "no_bias" and arch == "llama":
                    continue  # llama synthetic has no biases
                if mutation == "untied_ignores_output" and arch == "llama":
                    continue  # llama synthetic is tied
                bad = rf.forward(model, TOKENS, True, rf.Options(mutations=frozenset([mutation])))
                err = compare_logits(bad, exact).max_rel_error
                lines.append(f"{arch}/{mutation} {err:.3f}")
                if err < 3 * DEFAULT_TOLERANCE:
                    raise AssertionError(f"{arch}: mutation {mutation} only moves logits by {err:.4f}")
    return "; ".join(lines)


@check("draft disagrees sometimes")
def t_draft(files: dict):
    target = rf.GGUFModel(files[("qwen2", "Q8_0", "target")], cache_weights=True)
    draft = rf.GGUFModel(files[("qwen2", "Q8_0", "draft")], cache_weights=True)
    agree = []
    for start in ([72, 101, 108], [300, 5, 17, 250], [1, 2, 3, 4, 5]):
        seq = list(start)
        for _ in range(12):
            a = int(rf.forward(target, seq)[0].argmax())
            b = int(rf.forward(draft, seq)[0].argmax())
            agree.append(a == b)
            seq.append(a)
    rate = float(np.mean(agree))
    if not 0.15 <= rate <= 0.9:
        raise AssertionError(f"draft greedy agreement {rate:.2f} outside [0.15, 0.9]")
    return f"greedy agreement {rate:.2f}"


@check("SmolLM2 greedy 'The capital of France is'")
def t_smollm(path: str):
    from gguf_vocab import GGUFVocab
    vocab = GGUFVocab.load(path)
    prompt = vocab.encode_simple("The capital of France is")
    generated = rf.greedy_generate(path, prompt, 4)
    text = vocab.decode(generated)
    if not text.startswith(" Paris"):
        raise AssertionError(f"unexpected continuation {text!r}")
    return repr(text)


def main() -> int:
    ap = argparse.ArgumentParser()
    default_smollm = os.path.join(os.environ.get("TANDEM_MODELS", os.path.expanduser("~/.cache/tandem/models")),
                                  "SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--smollm", default=default_smollm)
    ap.add_argument("--skip-smollm", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        written = ms.generate(tmp / "models", ["qwen2", "llama"], ms.ALL_TYPES, 1234, True, 0.2)
        files = {(w["arch"], w["type"], w["role"]): w["path"] for w in written}
        t_kquant()
        t_determinism(tmp)
        t_precision(files)
        t_types(files)
        t_mutations(files)
        t_draft(files)
    if args.skip_smollm:
        print("SKIP SmolLM2 (--skip-smollm)")
    elif not os.path.exists(args.smollm):
        print(f"SKIP SmolLM2: {args.smollm} not found")
    else:
        t_smollm(args.smollm)
    passed = sum(1 for _, ok, _ in RESULTS if ok)
    failed = len(RESULTS) - passed
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
