"""NNEF export of the autoencoder, f32 and int8, in the form tract-nnef 0.23 loads.

An NNEF model here is a gzipped tar of `graph.nnef` (the graph), `graph.quant` (int8 only: the
quantisation of named tensors) and one `.dat` file per weight tensor.

`.dat` layout (NNEF tensor file): a 128-byte little-endian header, then the data, little-endian:

    offset  size  field
    0       4     magic and version: 4E EF 01 00
    4       4     data length in bytes
    8       4     rank
    12      32    dims, 8 x u32 (unused dims 0)
    44      4     bits per item
    48      4     item type: 0 float, 3 quantised signed integer (int8 here), 4 signed integer
    52      76    zero

The int8 graph (see `int8_graph`): the f32 input is quantised inside the graph with a
`tract_core_cast` to i8 that has its own `graph.quant` entry; each dense layer is one
`tract_core_einsum_q` with int8 inputs, int8 weights, an i32 bias and an int8 output (the
requantisation fused into the matrix product); ReLU is `max` with 0 on int8 (zero points are 0);
the last layer's int8 output is dequantised with a `tract_core_cast` to f32 that reads its
`graph.quant` entry. `tract_core_*` needs `extension tract_registry tract_core;`.
"""
from __future__ import annotations

import gzip
import io
import struct
import tarfile

import numpy as np

MAGIC = bytes([0x4E, 0xEF, 0x01, 0x00])
HEADER_BYTES = 128
ITEM_FLOAT, ITEM_QSIGNED, ITEM_SIGNED = 0, 3, 4
_ITEM = {np.dtype(np.float32): (ITEM_FLOAT, 32), np.dtype(np.int8): (ITEM_QSIGNED, 8),
         np.dtype(np.int32): (ITEM_SIGNED, 32)}


def dat_bytes(array: np.ndarray) -> bytes:
    """One NNEF tensor file: header and little-endian data (f32, int8 or i32)."""
    array = np.ascontiguousarray(array)
    if array.dtype not in _ITEM:
        raise ValueError(f"unsupported dtype {array.dtype}")
    if not 1 <= array.ndim <= 8:
        raise ValueError(f"unsupported rank {array.ndim}")
    item_type, bits = _ITEM[array.dtype]
    data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    header = bytearray(HEADER_BYTES)
    header[0:4] = MAGIC
    struct.pack_into("<II", header, 4, len(data), array.ndim)
    struct.pack_into("<8I", header, 12, *(list(array.shape) + [0] * (8 - array.ndim)))
    struct.pack_into("<II", header, 44, bits, item_type)
    return bytes(header) + data


def read_dat(blob: bytes) -> np.ndarray:
    """Parses an NNEF tensor file written by `dat_bytes` (checks every header field)."""
    if len(blob) < HEADER_BYTES or blob[0:4] != MAGIC:
        raise ValueError("not an NNEF tensor file (bad magic)")
    length, rank = struct.unpack_from("<II", blob, 4)
    dims = struct.unpack_from("<8I", blob, 12)
    bits, item_type = struct.unpack_from("<II", blob, 44)
    if not 1 <= rank <= 8 or any(dims[rank:]):
        raise ValueError(f"bad rank/dims {rank} {dims}")
    if any(blob[52:HEADER_BYTES]):
        raise ValueError("reserved header bytes are not zero")
    dtype = {(ITEM_FLOAT, 32): np.float32, (ITEM_QSIGNED, 8): np.int8, (ITEM_SIGNED, 32): np.int32}.get(
        (item_type, bits))
    if dtype is None:
        raise ValueError(f"unsupported item type {item_type} / {bits} bits")
    shape = dims[:rank]
    if length != int(np.prod(shape)) * bits // 8 or len(blob) != HEADER_BYTES + length:
        raise ValueError("data length does not match the header")
    return np.frombuffer(blob[HEADER_BYTES:], dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape).astype(dtype)


def tgz_bytes(files: dict[str, bytes]) -> bytes:
    """A reproducible .tgz (sorted names, mtime 0, no owner) of `files`."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mtime = 0
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def read_tgz(blob: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def _header(width: int, extension: bool) -> list[str]:
    lines = ["version 1.0;"]
    if extension:
        lines.append("extension tract_registry tract_core;")
    lines += ["", "graph network(input) -> (output)", "{",
              f"  input = external<scalar>(shape = [1, {width}]);"]
    return lines


def f32_graph(weights: list[np.ndarray], biases: list[np.ndarray]) -> dict[str, bytes]:
    """The f32 network: `linear` layers (filter [out, in], bias [1, out]), ReLU on hidden ones."""
    n = len(weights)
    lines = _header(weights[0].shape[1], extension=True)
    files = {}
    h = "input"
    for i, (w, b) in enumerate(zip(weights, biases)):
        files[f"w{i}.dat"] = dat_bytes(np.asarray(w, np.float32))
        files[f"b{i}.dat"] = dat_bytes(np.asarray(b, np.float32).reshape(1, -1))
        lines.append(f'  w{i} = variable<scalar>(label = "w{i}", shape = [{w.shape[0]}, {w.shape[1]}]);')
        lines.append(f'  b{i} = variable<scalar>(label = "b{i}", shape = [1, {b.size}]);')
        layer = f"linear({h}, w{i}, b{i})"
        lines.append(f"  l{i} = {layer if i == n - 1 else 'relu(' + layer + ')'};")
        h = f"l{i}"
    # A cast to the same type: a single node named `output` (tract removes it when optimising).
    lines += [f"  output = tract_core_cast({h}, to = \"f32\");", "}"]
    files["graph.nnef"] = ("\n".join(lines) + "\n").encode()
    return files


def _quant(name: str, scale: float, bits: int = 8) -> str:
    return (f'"{name}": zero_point_linear_quantize(zero_point = 0, scale = {float(scale)!r}, '
            f"bits = {bits}, signed = true, symmetric = true);")


def int8_graph(q) -> dict[str, bytes]:
    """The int8 network from a `ae.Quantised` (int8 weights, i32 biases, per-tensor scales)."""
    n = len(q.weights)
    lines = _header(q.weights[0].shape[1], extension=True)
    quant = [_quant("xq", q.act_scales[0])]
    lines += ['  xq = tract_core_cast(input, to = "i8");', '  zero = tract_core_cast(0, to = "i32");']
    files = {}
    h = "xq"
    for i, (w, b) in enumerate(zip(q.weights, q.biases)):
        files[f"w{i}.dat"] = dat_bytes(w.astype(np.int8))
        files[f"b{i}.dat"] = dat_bytes(b.astype(np.int32))
        lines.append(f'  w{i} = variable<integer>(label = "w{i}", shape = [{w.shape[0]}, {w.shape[1]}]);')
        lines.append(f'  b{i} = variable<integer>(label = "b{i}", shape = [{b.size}]);')
        lines.append(
            f'  l{i} = tract_core_einsum_q([{h}, w{i}], expr = "mk,nk,n,,,,,,->mn", acc = "i32", '
            f'output = "i8", bias = b{i}, a0 = zero, a_scale = {float(q.act_scales[i])!r}, b0 = zero, '
            f"b_scale = {float(q.weight_scales[i])!r}, c0 = zero, c_scale = {float(q.act_scales[i + 1])!r});")
        if i < n - 1:
            lines.append(f"  h{i} = relu(l{i});")
            h = f"h{i}"
    quant.append(_quant(f"l{n - 1}", q.act_scales[n]))
    lines += [f'  output = tract_core_cast(l{n - 1}, to = "f32");', "}"]
    files["graph.nnef"] = ("\n".join(lines) + "\n").encode()
    files["graph.quant"] = ("\n".join(quant) + "\n").encode()
    return files


def tract_runner(blob: bytes):
    """Loads an NNEF .tgz with the `tract` package (optimised, runnable); returns f(x[1,64]) -> y."""
    import os
    import tempfile

    import tract

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.nnef.tgz")
        with open(path, "wb") as f:
            f.write(blob)
        model = tract.nnef().load(path)
    runnable = model.into_runnable()

    def run(x: np.ndarray) -> np.ndarray:
        return runnable.run([np.ascontiguousarray(x, dtype=np.float32).reshape(1, -1)])[0].to_numpy()

    return run


def parse_f32(blob: bytes):
    """(weights, biases) of an f32 model written by `f32_graph`."""
    files = read_tgz(blob)
    n = sum(1 for name in files if name.startswith("w") and name.endswith(".dat"))
    weights = [read_dat(files[f"w{i}.dat"]) for i in range(n)]
    biases = [read_dat(files[f"b{i}.dat"]).reshape(-1) for i in range(n)]
    return weights, biases


def parse_int8(blob: bytes):
    """The `ae.Quantised` of an int8 model written by `int8_graph` (scales read back from the
    graph and graph.quant)."""
    import re

    import ae

    files = read_tgz(blob)
    graph = files["graph.nnef"].decode()
    quant = files["graph.quant"].decode()
    n = sum(1 for name in files if name.startswith("w") and name.endswith(".dat"))
    weights = [read_dat(files[f"w{i}.dat"]) for i in range(n)]
    biases = [read_dat(files[f"b{i}.dat"]).reshape(-1) for i in range(n)]
    layers = re.findall(r"a_scale = ([^,]+), b0 = zero, b_scale = ([^,]+), c0 = zero, c_scale = ([^)]+)\);", graph)
    if len(layers) != n:
        raise ValueError("unexpected int8 graph")
    scales = dict(re.findall(r'"(\w+)": zero_point_linear_quantize\(zero_point = 0, scale = ([^,]+),', quant))
    act = [float(scales["xq"])] + [float(c) for _, _, c in layers]
    if float(scales[f"l{n - 1}"]) != act[-1] or any(float(a) != act[i] for i, (a, _, _) in enumerate(layers)):
        raise ValueError("inconsistent scales in the int8 graph")
    return ae.Quantised(weights, biases, [float(b) for _, b, _ in layers], act)
