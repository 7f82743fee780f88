#!/usr/bin/env python3
"""Write the synthetic GGUF fixture (tests/fixtures/synthetic.gguf) with the `gguf` package's writer.

Usage: gguf_synth.py OUT.gguf

Metadata of every value type (arrays included) and small tensors (3 rows) of every type the Rust
reader dequantizes. Types that `gguf.quants` can quantize are quantized from random floats; for
the others (k-quants, IQ4_NL) random block bytes are crafted with finite f16 scales, since the
Python package can dequantize but not quantize them. Seeded: rerunning gives the same file.
"""
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize

ROWS = 3

# Byte offsets of the f16 scale fields inside each crafted block type.
F16_FIELDS = {
    T.Q2_K: [80, 82],
    T.Q3_K: [108],
    T.Q4_K: [0, 2],
    T.Q5_K: [0, 2],
    T.Q6_K: [208],
    T.IQ4_NL: [0],
    T.Q4_0: [0],
    T.Q4_1: [0, 2],
    T.Q5_0: [0],
    T.Q5_1: [0, 2],
    T.Q8_0: [0],
}


def crafted(rng, qtype, cols):
    block, nbytes = gguf.GGML_QUANT_SIZES[qtype]
    per_row = cols // block
    raw = rng.integers(0, 256, size=(ROWS, per_row, nbytes), dtype=np.uint8)
    for off in F16_FIELDS[qtype]:
        scales = rng.uniform(-0.05, 0.05, size=(ROWS, per_row)).astype(np.float16)
        raw[:, :, off:off + 2] = scales.view(np.uint8).reshape(ROWS, per_row, 2)
    return raw.reshape(ROWS, per_row * nbytes)


def main(out):
    rng = np.random.default_rng(20260528)
    w = gguf.GGUFWriter(out, arch="synthetic")
    w.add_custom_alignment(64)
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4_000_000_000)
    w.add_int32("test.i32", -2_000_000_000)
    w.add_float32("test.f32", 0.1)
    w.add_uint64("test.u64", 2**63 + 5)
    w.add_int64("test.i64", -(2**62))
    w.add_float64("test.f64", 1.0 / 3.0)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "héllo 世界 🦀\n\t\"q\"")
    w.add_array("test.arr_int", [1, -2, 3])
    w.add_array("test.arr_float", [0.5, -1.25])
    w.add_array("test.arr_str", ["a", "", "Ġb", "<|im_end|>"])
    w.add_array("test.arr_bool", [True, False])

    cols_small = 64   # two blocks of 32
    cols_k = 512      # two super-blocks of 256
    x = rng.standard_normal((ROWS, cols_k)).astype(np.float32)
    w.add_tensor("t.F32", x[:, :cols_small].copy())
    w.add_tensor("t.F16", x[:, :cols_small].astype(np.float16))
    w.add_tensor("t.F64", x[:, :cols_small].astype(np.float64))
    w.add_tensor("t.I8", rng.integers(-128, 128, size=(ROWS, 16), dtype=np.int8))
    w.add_tensor("t.I16", rng.integers(-30000, 30000, size=(ROWS, 16), dtype=np.int16))
    w.add_tensor("t.I32", rng.integers(-2**31, 2**31 - 1, size=(ROWS, 16), dtype=np.int32))
    for qtype in [T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]:
        q = quantize(x[:, :cols_small], qtype)
        w.add_tensor(f"t.{qtype.name}", q, raw_shape=q.shape, raw_dtype=qtype)
    # Crafted bytes, including the block types that can also be quantized (covers all nibble values).
    for qtype in [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.IQ4_NL]:
        q = crafted(rng, qtype, cols_small)
        w.add_tensor(f"t.{qtype.name}.raw", q, raw_shape=q.shape, raw_dtype=qtype)
    for qtype in [T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]:
        q = crafted(rng, qtype, cols_k)
        w.add_tensor(f"t.{qtype.name}", q, raw_shape=q.shape, raw_dtype=qtype)
    # A 1-D and a 3-D tensor (ggml dims order is the reverse of numpy's).
    w.add_tensor("t.vec", x[0, :32].copy())
    w.add_tensor("t.cube", x[:, :cols_small].reshape(ROWS, 2, 32).copy())

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main(sys.argv[1])
