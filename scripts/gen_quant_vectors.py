#!/usr/bin/env python3
"""Test vectors for ktune's GGML block formats (kernels/src/quant), from the `gguf` package.

Reference: the `gguf` package from PyPI, pinned to gguf==0.19.0 (numpy 2.4.6 when the
committed vectors were made). Its `gguf.quants` module quantizes and dequantizes q8_0 and
q4_0 and dequantizes q4_K, in numpy.

    python3 -m venv /tmp/gguf-venv && /tmp/gguf-venv/bin/pip install gguf==0.19.0
    /tmp/gguf-venv/bin/python scripts/gen_quant_vectors.py

writes kernels/tests/data/quant/ (all little-endian, no headers; counts follow from sizes):

    f16_in.f32        f32 inputs of the f32 -> f16 conversion
    f16_out.u16       numpy's `astype(np.float16)` of each, as bits
    rows.f32          f32 rows, a multiple of 32 long (blocks of 32: edge cases, then
                      random data of several distributions and magnitudes)
    q8_0.bin          gguf's q8_0 quantization of rows.f32 (34-byte blocks)
    q8_0_deq.f32      gguf's dequantization of q8_0.bin
    q4_0.bin          gguf's q4_0 quantization of rows.f32 (18-byte blocks)
    q4_0_deq.f32      gguf's dequantization of q4_0.bin
    q8_0_rand.bin     random q8_0 blocks (any finite f16 scale, any qs)
    q8_0_rand_deq.f32 and their dequantization
    q4_0_rand.bin     random q4_0 blocks, likewise
    q4_0_rand_deq.f32
    q4_k_rand.bin     random q4_K blocks (any finite f16 d and dmin, any scales and qs bytes)
    q4_k_rand_deq.f32 and their dequantization

The output depends only on the seed, numpy's PCG64 stream and the reference, so running the
script again reproduces the files byte for byte (README.md there lists their SHA-256).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

import gguf
from gguf.quants import dequantize, quantize
from gguf import GGMLQuantizationType as T

GGUF_VERSION = "0.19.0"
SEED = 20240611
OUT = Path(__file__).resolve().parent.parent / "kernels" / "tests" / "data" / "quant"


def check_version() -> str:
    from importlib.metadata import version

    found = version("gguf")
    if found != GGUF_VERSION:
        sys.exit(f"gguf {found} is installed; these vectors are pinned to gguf=={GGUF_VERSION}")
    return found


def edge_blocks() -> list[np.ndarray]:
    """Blocks of 32 that exercise the corners of q8_0 and q4_0 quantization."""
    b: list[np.ndarray] = []
    z = np.zeros(32, np.float32)
    b.append(z.copy())                                   # all +0
    b.append(np.full(32, -0.0, np.float32))              # all -0: q4_0 takes the sign of x[0]
    m = z.copy(); m[0] = -0.0; b.append(m)               # -0 first, then +0
    b.append(np.full(32, 1.0, np.float32))               # constants
    b.append(np.full(32, -3.25, np.float32))
    b.append(np.full(32, 1e-3, np.float32))
    o = z.copy(); o[17] = 5.0; b.append(o)               # single outlier among zeros
    o = z.copy(); o[31] = -100.0; b.append(o)
    rng = np.random.default_rng(SEED + 1)
    for pos, val in [(0, 50.0), (13, -40.0), (31, 1e4)]:
        o = rng.normal(0, 0.1, 32).astype(np.float32); o[pos] = val; b.append(o)
    # negative-dominant: the value of largest magnitude is negative
    n = rng.uniform(-1, 0.5, 32).astype(np.float32); n[5] = -2.0; b.append(n)
    # ties for the largest magnitude: q4_0 keeps the first one's sign
    t = rng.uniform(-1, 1, 32).astype(np.float32); t[2], t[9] = 3.0, -3.0; b.append(t)
    t = t.copy(); t[2], t[9] = -3.0, 3.0; b.append(t)
    # exact halves. q8_0: amax 127 gives d = 1, so x*id = x; roundf takes halves away from 0.
    h = np.array([127.0] + [k + 0.5 for k in range(-15, 16)], np.float32); b.append(h)
    h = np.array([-127.0] + [k + 0.5 for k in range(-15, 16)], np.float32); b.append(h)
    # amax 63.5: d = 0.5, id = 2, so quarters land on halves
    h = np.array([63.5] + [k * 0.25 + 0.25 for k in range(-16, 15)], np.float32); b.append(h)
    # q4_0: max -8 gives d = 1, id = 1, so x + 8.5 is exact and trunc rounds halves up
    h = np.array([-8.0] + [k * 0.5 for k in range(-15, 16)], np.float32); b.append(h)
    h = np.array([8.0] + [k * 0.5 for k in range(-15, 16)], np.float32); b.append(h)
    h = np.array([-8.0, 7.5, 7.49, 7.51, 8.0] + [k + 0.5 for k in range(-8, 19)], np.float32)
    b.append(h)
    # magnitudes: f16-subnormal and flushed scales, large but in range, overflowing f16 d
    for scale in [1e-6, 1e-4, 3e-3, 1e-20, 1e-30, 1e3, 6e4, 1e6]:
        b.append((rng.normal(0, 1, 32) * scale).astype(np.float32))
    return b


def random_rows(rng: np.random.Generator, n_blocks: int) -> np.ndarray:
    """Blocks of 32 from several distributions; each block has its own magnitude."""
    out = []
    kinds = ["normal", "uniform", "laplace", "weights", "logmag", "int", "sparse"]
    for i in range(n_blocks):
        kind = kinds[i % len(kinds)]
        if kind == "normal":
            x = rng.normal(0, 1, 32)
        elif kind == "uniform":
            x = rng.uniform(-1, 1, 32)
        elif kind == "laplace":
            x = rng.laplace(0, 1, 32)
        elif kind == "weights":  # typical model weights
            x = rng.normal(0, 0.02, 32)
        elif kind == "logmag":  # random signs, magnitudes over many octaves
            x = rng.choice([-1.0, 1.0], 32) * np.exp2(rng.uniform(-20, 10, 32))
        elif kind == "int":  # small integers: many exact products and ties
            x = rng.integers(-16, 17, 32).astype(np.float64)
        else:
            x = np.where(rng.random(32) < 0.8, 0.0, rng.normal(0, 1, 32))
        x = x * np.exp2(rng.integers(-12, 12))
        out.append(x.astype(np.float32))
    return np.stack(out)


def f16_inputs(rng: np.random.Generator) -> np.ndarray:
    """f32 values across the f16 range, its edges and exact ties (no NaN: the reference's NaN
    payload handling is not part of the contract)."""
    special = np.array(
        [0.0, -0.0, 1.0, -1.0, 65504.0, -65504.0, 65519.996, 65520.0, 65536.0, 1e10,
         np.inf, -np.inf, 2.0 ** -14, 2.0 ** -24, 2.0 ** -25, 2.0 ** -25 * 1.0000001,
         2.0 ** -26, 3 * 2.0 ** -26, 2.0 ** -14 - 2.0 ** -25, 1.0 + 2.0 ** -11,
         1.0 + 3 * 2.0 ** -11, 1e-45, -1e-45, 1e-38, 3.4e38],
        np.float32,
    )
    # exact ties between neighbouring f16 values, normal and subnormal
    h = rng.integers(0, 0x7BFF, 512).astype(np.uint16)
    lo = h.view(np.float16).astype(np.float64)
    hi = (h + 1).view(np.float16).astype(np.float64)
    ties = ((lo + hi) / 2).astype(np.float32) * rng.choice([-1, 1], 512)
    # random f32 bit patterns with exponents around the f16 range
    bits = rng.integers(0, 1 << 23, 3000, dtype=np.uint32)
    exps = rng.integers(95, 146, 3000, dtype=np.uint32)
    signs = rng.integers(0, 2, 3000, dtype=np.uint32) << np.uint32(31)
    rand = (signs | (exps << np.uint32(23)) | bits).view(np.float32)
    return np.concatenate([special, ties.astype(np.float32), rand]).astype(np.float32)


def random_finite_f16(rng: np.random.Generator, n: int) -> np.ndarray:
    """Uniform over the bit patterns of finite f16 values (subnormals and both signs)."""
    h = rng.integers(0, 1 << 16, n, dtype=np.uint32).astype(np.uint16)
    finite = (h & 0x7C00) != 0x7C00
    return h[finite]


def random_blocks(rng: np.random.Generator, n: int, size: int, n_f16: int) -> np.ndarray:
    """n random blocks of `size` bytes whose first n_f16 halves are finite f16 values."""
    blocks = rng.integers(0, 256, (n, size), dtype=np.uint8)
    for k in range(n_f16):
        scale = random_finite_f16(rng, 4 * n)[:n]
        scale[: min(n, 4)] = [0x0000, 0x8000, 0x0001, 0x7BFF][: min(n, 4)]
        blocks[:, 2 * k: 2 * k + 2] = np.roll(scale, k).view(np.uint8).reshape(n, 2)
    return blocks


def main() -> None:
    version = check_version()
    rng = np.random.default_rng(SEED)
    OUT.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}

    x = f16_inputs(rng)
    files["f16_in.f32"] = x.astype("<f4").tobytes()
    with np.errstate(over="ignore"):
        files["f16_out.u16"] = x.astype(np.float16).view("<u2").tobytes()

    edges = edge_blocks()
    rows = np.concatenate([np.stack(edges), random_rows(rng, 256 - len(edges))]).reshape(-1, 256)
    files["rows.f32"] = rows.astype("<f4").tobytes()
    with np.errstate(over="ignore", invalid="ignore"):
        for name, qtype in [("q8_0", T.Q8_0), ("q4_0", T.Q4_0)]:
            q = quantize(rows, qtype)
            files[f"{name}.bin"] = q.tobytes()
            files[f"{name}_deq.f32"] = dequantize(q, qtype).astype("<f4").tobytes()

        for name, qtype, size, n_f16, n in [
            ("q8_0_rand", T.Q8_0, 34, 1, 96),
            ("q4_0_rand", T.Q4_0, 18, 1, 96),
            ("q4_k_rand", T.Q4_K, 144, 2, 48),
        ]:
            blocks = random_blocks(rng, n, size, n_f16)
            files[f"{name}.bin"] = blocks.tobytes()
            deq = dequantize(blocks.reshape(1, -1), qtype)
            files[f"{name}_deq.f32"] = deq.astype("<f4").tobytes()

    total = 0
    lines = []
    for name, data in files.items():
        (OUT / name).write_bytes(data)
        total += len(data)
        lines.append(f"{hashlib.sha256(data).hexdigest()}  {name}")
    print(f"gguf {version}, numpy {np.__version__}: {len(files)} files, {total} bytes in {OUT}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
