#!/usr/bin/env python3
"""Oracle side of tests/test_gguf.sh: the `gguf` PyPI package (GGUFReader, GGUFWriter and its
numpy (de)quantizers) judges the GGUF files and dequantization of ferrum.

  check-ours FILE JSON     FILE was written by ferrum (`test_quant gen`), JSON is what ferrum
                           meant to write. Metadata and tensor infos as GGUFReader sees them must
                           equal JSON; gguf's dequantization of every quantized tensor must equal
                           ferrum's (stored next to it as NAME.deq); ferrum's quantizer output must
                           be byte-identical to gguf.quants.quantize for the types gguf can
                           quantize, and within error bounds of the source for all.
  write-theirs DIR         GGUFWriter writes DIR/theirs.gguf and DIR/theirs64.gguf (alignment 64)
                           with metadata of every type incl. nested arrays and tensors of every
                           type ferrum reads (quantized with gguf.quants where gguf can).
  check-theirs FILE DUMP   DUMP is ferrum's reading of FILE (`test_quant dump`): metadata, tensor
                           infos and offsets must equal GGUFReader's; ferrum's dequantization must
                           equal gguf.quants.dequantize.
Exits non-zero on any mismatch; prints the max differences per type."""
import json
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V

NAMES = {V.UINT8: "u8", V.INT8: "i8", V.UINT16: "u16", V.INT16: "i16", V.UINT32: "u32",
         V.INT32: "i32", V.FLOAT32: "f32", V.BOOL: "bool", V.STRING: "string",
         V.ARRAY: "array", V.UINT64: "u64", V.INT64: "i64", V.FLOAT64: "f64"}

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg)


def walk(parts, i, t):
    """Rebuilds one value from GGUFReader's flat list of parts (it flattens nested arrays)."""
    if t == V.STRING:
        return {"t": "string", "hex": bytes(parts[i + 1]).hex()}, i + 2
    if t == V.ARRAY:
        et = V(int(parts[i][0]))
        n = int(parts[i + 1][0])
        i += 2
        items = []
        for _ in range(n):
            v, i = walk(parts, i, et)
            items.append(v)
        return {"t": "array", "elem": NAMES[et], "items": items}, i
    x = parts[i][0]
    if t == V.BOOL:
        v = bool(x)
    elif t in (V.FLOAT32, V.FLOAT64):
        v = float(x)
    else:
        v = int(x)
    return {"t": NAMES[t], "v": v}, i + 1


def reader_kvs(r):
    out = []
    for name, f in r.fields.items():
        if name.startswith("GGUF."):
            continue
        v, end = walk(f.parts, 3, V(int(f.parts[2][0])))
        check(end == len(f.parts), f"{name}: parts left over")
        out.append((name, v))
    return out


def canon(v):
    """Floats compare as floats (JSON may spell -0.0 as -0)."""
    if "items" in v:
        return {**v, "items": [canon(x) for x in v["items"]]}
    if v["t"] in ("f32", "f64"):
        return {**v, "v": float(v["v"])}
    return v


def dequant(t):
    if t.tensor_type in (Q.I8, Q.I16, Q.I32, Q.I64, Q.F64):
        return np.asarray(t.data, dtype=np.float64).astype(np.float32)
    return gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)


def max_diff(a, b):
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        return float("inf"), float("inf")
    d = np.abs(a - b)
    scale = np.maximum(np.abs(b), np.finfo(np.float32).tiny)
    return float(d.max(initial=0.0)), float((d / scale).max(initial=0.0))


def equal_to_rounding(name, ours, ref, report):
    """Equal up to float32 rounding of the products: |diff| <= 2^-23 |ref| per element."""
    da, dr = max_diff(ours, ref)
    report.append((name, da, dr))
    check(dr <= 2.0 ** -23, f"{name}: ours vs gguf differ by {da:.3g} abs, {dr:.3g} rel")


# RMSE/RMS bounds for gguf's dequantization of our quantizer's output on the four source rows
# (Gaussian, mixed scales, 1% outliers x30, uniform positive): twice the Gaussian-data bounds of
# test_quant.c, since outliers widen the blocks' range.
QUANT_BOUND = {"q8_0": 0.024, "q4_0": 0.19, "q4_1": 0.17, "q5_0": 0.092, "q5_1": 0.082,
               "q4_k": 0.16, "q5_k": 0.08, "q6_k": 0.04, "f16": 1e-3, "bf16": 5e-3, "f32": 0.0}
GGUF_QUANTIZES = {"q8_0": Q.Q8_0, "q4_0": Q.Q4_0, "q4_1": Q.Q4_1, "q5_0": Q.Q5_0,
                  "q5_1": Q.Q5_1, "bf16": Q.BF16, "f16": Q.F16, "f32": Q.F32}


def check_ours(path, json_path):
    spec = json.load(open(json_path))
    r = gguf.GGUFReader(path)
    kvs = reader_kvs(r)
    check([k for k, _ in kvs] == [k for k, _ in spec["kv"]], "metadata keys / order differ")
    want = dict((k, canon(v)) for k, v in spec["kv"])
    for k, v in kvs:
        check(canon(v) == want.get(k), f"metadata {k}: gguf reads {v}, ferrum wrote {want.get(k)}")
    tensors = {t.name: t for t in r.tensors}
    check([t.name for t in r.tensors] == [s[0] for s in spec["tensors"]], "tensor order differs")
    for name, dtype, shape in spec["tensors"]:
        t = tensors.get(name)
        check(t is not None, f"tensor {name} missing")
        if t is None:
            continue
        check(t.tensor_type.name.lower() == dtype, f"{name}: type {t.tensor_type.name} != {dtype}")
        check(list(reversed([int(x) for x in t.shape])) == shape,
              f"{name}: shape {list(t.shape)} (ne order) vs ferrum {shape} (row-major)")
        check(t.data_offset % r.alignment == 0, f"{name}: misaligned")
    report, quant_report = [], []
    for name, dtype, shape in spec["tensors"]:
        if not name.startswith("rand.") or name.endswith(".deq"):
            continue
        t = tensors[name]
        equal_to_rounding(dtype, dequant(t), tensors[name + ".deq"].data, report)
        qt = tensors["quant." + dtype]
        src = np.asarray(tensors["quant." + dtype + ".src"].data, dtype=np.float32)
        theirs_deq = dequant(qt)
        equal_to_rounding("quant " + dtype, theirs_deq, tensors["quant." + dtype + ".deq"].data,
                          [])
        rel = [float(np.sqrt(np.mean((theirs_deq[i] - src[i]) ** 2) / np.mean(src[i] ** 2)))
               for i in range(src.shape[0])]
        check(max(rel) <= QUANT_BOUND[dtype], f"{dtype}: quantization error {rel}")
        mismatched = "-"
        if dtype in GGUF_QUANTIZES:
            ref = gguf.quants.quantize(src, GGUF_QUANTIZES[dtype])
            ours = np.asarray(qt.data)
            rb = ref.view(np.uint8).reshape(src.shape[0], -1)
            ob = ours.view(np.uint8).reshape(src.shape[0], -1)
            bs = gguf.GGML_QUANT_SIZES[GGUF_QUANTIZES[dtype]][1]
            diff = (rb.reshape(-1, bs) != ob.reshape(-1, bs)).any(axis=1)
            mismatched = f"{int(diff.sum())}/{diff.size}"
            check(not diff.any(), f"{dtype}: {mismatched} blocks differ from gguf.quants.quantize")
        quant_report.append((dtype, rel, mismatched))
    cube = np.asarray(tensors["shape.3d"].data)
    check(cube.shape == (2, 3, 32) and np.array_equal(cube.ravel(), np.arange(192) * 0.25),
          "shape.3d contents")
    check(list(np.asarray(tensors["shape.i32"].data)) == [-7, 0, 1, 2147483647, -2147483648, 5],
          "shape.i32 contents")
    print("ferrum-written file, random blocks incl. extreme scales: ferrum vs gguf dequantize")
    for name, da, dr in report:
        print(f"  {name:5s} max abs diff {da:.3g}  max rel diff {dr:.3g}")
    print("ferrum quantizer output read by gguf: rel RMSE per source row; blocks != gguf quantize")
    for dtype, rel, mm in quant_report:
        print(f"  {dtype:5s} " + " ".join(f"{x:.5f}" for x in rel) + f"   {mm}")


def f16_regimes(rng, n):
    """Finite f16 scales: normal, subnormal, near 65504, zero, negative (cycling)."""
    out = np.empty(n, dtype=np.float16)
    for i in range(n):
        k = i % 5
        if k == 0:
            out[i] = rng.uniform(2.0 ** -14, 8.0)
        elif k == 1:
            out[i] = np.float16(rng.integers(1, 1024) * 2.0 ** -24)
        elif k == 2:
            out[i] = rng.uniform(16384, 65504)
        elif k == 3:
            out[i] = 0
        else:
            out[i] = -rng.uniform(2.0 ** -5, 4.0)
    return out


def random_k_blocks(rng, qtype, rows, cols):
    bs, bb = gguf.GGML_QUANT_SIZES[qtype]
    nb = rows * cols // bs
    b = rng.integers(0, 256, size=(nb, bb), dtype=np.uint8)
    fields = [208] if qtype == Q.Q6_K else [0, 2]
    for j, off in enumerate(fields):
        b[:, off:off + 2] = f16_regimes(rng, nb + j)[j:].view(np.uint8).reshape(nb, 2)
    return b.reshape(rows, cols // bs * bb)


def write_theirs(out_dir):
    rng = np.random.default_rng(7)
    for fname, align in (("theirs.gguf", None), ("theirs64.gguf", 64)):
        w = gguf.GGUFWriter(os.path.join(out_dir, fname), "llama")
        if align:
            w.add_custom_alignment(align)
        w.add_uint8("s.u8", 255)
        w.add_int8("s.i8", -128)
        w.add_uint16("s.u16", 65535)
        w.add_int16("s.i16", -32768)
        w.add_uint32("s.u32", 4294967295)
        w.add_int32("s.i32", -2147483648)
        w.add_float32("s.f32", 0.1)
        w.add_uint64("s.u64", 18446744073709551615)
        w.add_int64("s.i64", -9223372036854775808)
        w.add_float64("s.f64", -1.0e-300)
        w.add_bool("s.bool", False)
        w.add_string("s.str", "grüße ✓ \u4e16\u754c")
        w.add_string("s.empty", "")
        for key, vt, vals in (("a.u8", V.UINT8, [1, 2, 255]), ("a.i8", V.INT8, [-1, 127]),
                              ("a.u16", V.UINT16, [65535]), ("a.i16", V.INT16, [-2, 3]),
                              ("a.u32", V.UINT32, [7, 4294967295]), ("a.i32", V.INT32, [-5]),
                              ("a.f32", V.FLOAT32, [0.5, -2.25, 1e-40]),
                              ("a.u64", V.UINT64, [2 ** 64 - 1]), ("a.i64", V.INT64, [-(2 ** 63)]),
                              ("a.f64", V.FLOAT64, [3.141592653589793]),
                              ("a.bool", V.BOOL, [True, False, True])):
            w.add_key_value(key, vals, V.ARRAY, sub_type=vt)
        w.add_array("a.str", ["<s>", "", "ü", "a b"])
        w.add_array("a.nested", [[1, 2, 3], [4]])
        w.add_array("a.nested_str", [["a", "b"], ["c"]])
        w.add_array("a.deep", [[[1.5]], [[2.5, 3.5]]])
        # tensors: every type ferrum reads, plus I8 / F64 it only lists
        w.add_tensor("f32", rng.standard_normal((3, 64)).astype(np.float32))
        w.add_tensor("f16", rng.standard_normal((2, 32)).astype(np.float16))
        w.add_tensor("bf16", gguf.quants.quantize(rng.standard_normal((2, 32)).astype(np.float32),
                                                  Q.BF16), raw_dtype=Q.BF16)
        scales = np.array([1.0, 1e-3, 30.0, 1e-6], dtype=np.float32).reshape(4, 1)
        for qt in (Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1):
            x = (rng.standard_normal((4, 256)) * scales).astype(np.float32)
            w.add_tensor(qt.name.lower(), gguf.quants.quantize(x, qt), raw_dtype=qt)
        for qt in (Q.Q4_K, Q.Q5_K, Q.Q6_K):
            w.add_tensor(qt.name.lower(), random_k_blocks(rng, qt, 3, 512), raw_dtype=qt)
        w.add_tensor("cube", np.arange(2 * 3 * 32, dtype=np.float32).reshape(2, 3, 32))
        w.add_tensor("ids", np.array([-3, 0, 2 ** 31 - 1], dtype=np.int32))
        w.add_tensor("i8", np.array([[1, -2], [3, 4]], dtype=np.int8))
        w.add_tensor("f64", np.array([1.5, 2.5], dtype=np.float64))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()


def check_theirs(path, dump_dir):
    meta = json.load(open(os.path.join(dump_dir, "meta.json")))
    r = gguf.GGUFReader(path)
    kvs = reader_kvs(r)
    ours = [(bytes.fromhex(k).decode("utf-8"), canon(v)) for k, v in meta["kv"]]
    check([k for k, _ in ours] == [k for k, _ in kvs], "metadata keys / order differ")
    for (k, v), (_, o) in zip(kvs, ours):
        check(canon(v) == o, f"metadata {k}: gguf {v} vs ferrum {o}")
    check(meta["alignment"] == r.alignment, f"alignment {meta['alignment']} vs {r.alignment}")
    check(meta["data_offset"] == r.data_offset, "data section offset differs")
    check(meta["version"] == 3, "version")
    check(len(meta["tensors"]) == len(r.tensors), "tensor count differs")
    report = []
    for i, (mt, t) in enumerate(zip(meta["tensors"], r.tensors)):
        check(mt["name"] == t.name, f"tensor {i}: name {mt['name']} vs {t.name}")
        check(mt["type"] == t.tensor_type.name, f"{t.name}: type {mt['type']}")
        check(mt["shape"] == list(reversed([int(x) for x in t.shape])),
              f"{t.name}: shape {mt['shape']} vs ne {list(t.shape)}")
        check(mt["offset"] == t.data_offset and mt["nbytes"] == t.n_bytes,
              f"{t.name}: offset/nbytes differ")
        computable = t.tensor_type not in (Q.I8, Q.F64)
        check(mt["dequantized"] == computable, f"{t.name}: ferrum computable={mt['dequantized']}")
        if not mt["dequantized"]:
            continue
        ours_f = np.fromfile(os.path.join(dump_dir, f"t{i}.f32"), dtype=np.float32)
        equal_to_rounding(t.name, ours_f, dequant(t), report)
    print(f"gguf-written {os.path.basename(path)} (alignment {r.alignment}): ferrum reader + "
          f"dequantize vs gguf")
    for name, da, dr in report:
        print(f"  {name:5s} max abs diff {da:.3g}  max rel diff {dr:.3g}")


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "check-ours" and len(sys.argv) == 4:
        check_ours(sys.argv[2], sys.argv[3])
    elif cmd == "write-theirs" and len(sys.argv) == 3:
        write_theirs(sys.argv[2])
    elif cmd == "check-theirs" and len(sys.argv) == 4:
        check_theirs(sys.argv[2], sys.argv[3])
    else:
        print(__doc__)
        return 2
    if failures:
        print(f"{len(failures)} failures")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
