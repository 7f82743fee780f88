#!/usr/bin/env python3
"""Reference dump of a GGUF file made with the `gguf` package (llama.cpp's own Python reader).

Usage: gguf_dump.py FILE.gguf OUT.json

Writes: version, alignment, data offset, every metadata key with its type and value, every tensor's
info, and for every tensor, from `gguf.quants.dequantize`: float64 sums of x, x², x·w (w = (i mod 7) - 3,
position-sensitive) over all values, and three full sample rows (first, middle, last) of the
dequantized matrix (row = dims[0] contiguous values). The Rust parity test (tests/gguf_parity.rs)
computes the same numbers with speccascade_models::gguf and compares.
"""
import json
import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType
from gguf.quants import dequantize


def value_json(field):
    types = [t.name for t in field.types]
    if field.types[0] == GGUFValueType.ARRAY:
        elem = field.types[-1]
        if elem == GGUFValueType.STRING:
            vals = [bytes(field.parts[i]).decode("utf-8") for i in field.data]
        elif elem == GGUFValueType.ARRAY:
            raise SystemExit(f"nested arrays are not dumped ({field.name})")
        else:
            vals = [field.parts[i].tolist()[0] for i in field.data]
        return {"type": "ARRAY", "elem": elem.name, "value": vals}
    t = field.types[0]
    if t == GGUFValueType.STRING:
        return {"type": t.name, "value": bytes(field.parts[field.data[0]]).decode("utf-8")}
    v = field.parts[field.data[0]].tolist()[0]
    if t == GGUFValueType.BOOL:
        v = bool(v)
    return {"type": types[0], "value": v}


def main(path, out):
    r = GGUFReader(path)
    meta = {}
    version = None
    for name, field in r.fields.items():
        if name.startswith("GGUF."):
            if name == "GGUF.version":
                version = int(field.parts[field.data[0]][0])
            continue
        meta[name] = value_json(field)
    tensors = []
    for t in r.tensors:
        raw = np.asarray(t.data)
        if t.tensor_type.name in ("F64", "I8", "I16", "I32", "I64"):
            x = raw.astype(np.float32)  # plain numbers: the reader already typed them
        else:
            x = dequantize(raw, t.tensor_type).astype(np.float32)
        dims = [int(d) for d in t.shape]  # ggml order: dims[0] contiguous
        row = dims[0]
        flat = x.reshape(-1)
        rows = flat.reshape(-1, row)
        n_rows = rows.shape[0]
        w = (np.arange(flat.size, dtype=np.int64) % 7 - 3).astype(np.float64)
        x64 = flat.astype(np.float64)
        picks = sorted({0, n_rows // 2, n_rows - 1})
        tensors.append({
            "name": t.name,
            "dims": dims,
            "type": t.tensor_type.name,
            "type_id": int(t.tensor_type.value),
            "offset": int(t.data_offset) - int(r.data_offset),
            "abs_offset": int(t.data_offset),
            "n_bytes": int(t.n_bytes),
            "sum": float(x64.sum()),
            "sum_sq": float((x64 * x64).sum()),
            "sum_w": float((x64 * w).sum()),
            "sample_rows": {str(i): rows[i].tolist() for i in picks},
        })
    doc = {
        "version": version,
        "alignment": int(r.alignment),
        "data_offset": int(r.data_offset),
        "metadata": meta,
        "tensors": tensors,
    }
    with open(out, "w") as f:
        json.dump(doc, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
