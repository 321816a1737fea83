"""`probssl bench throughput`: runs end to end and reports every ratio the issue asks for.
(Speed itself is measured by the benchmark, never asserted here.)"""

import json

import pytest
import torch

from probssl.cli import main
from probssl.data.augment import get_preset
from probssl.experiments.throughput import (
    DenseOps,
    MethodThroughput,
    count_flops,
    interleaved,
    per_sample_augment,
)


def test_flop_count_and_dense_ops_of_a_known_layer():
    layer = torch.nn.Linear(30, 20)
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.randn(8, 30, requires_grad=True)
    img = torch.randn(2, 3, 8, 8, requires_grad=True)
    # forward 2·8·30·20; backward: grad of the input and of the weight, as much again each
    assert count_flops(lambda: layer(x).sum().backward()) == 3 * 2 * 8 * 30 * 20
    with DenseOps() as rec:
        layer(x).sum().backward()
        conv(img).sum().backward()
    names = [f.overloadpacket.__name__ for f, _, _ in rec.calls]
    assert names.count("addmm") + names.count("mm") == 3 and "convolution" in names
    # each distinct op alone on fresh tensors, times its count: the step's FLOPs exactly
    ops = rec.distinct()
    assert sum(count * count_flops(op) for op, count in ops) == \
        count_flops(lambda: (layer(x).sum().backward(), conv(img).sum().backward()))


def test_interleaved_timing_alternates_rounds_and_invalid_utilisation_is_flagged():
    order = []
    t = interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")},
                    min_seconds=0.0, min_calls=1, warmup=0, rounds=3)
    assert order == ["a", "b"] * 3 and set(t) == {"a", "b"}
    fast = MethodThroughput("vae", 1, 128, step_seconds=1.0, end_to_end_seconds=2.0,
                            flops_per_step=int(3e9), peak_gflops=2.0).row()
    assert fast["mfu_step"] is None and fast["mfu_end_to_end"] == 0.75
    assert "mfu_step above 1" in fast["invalid"]


def test_per_sample_reference_makes_the_same_kind_of_views():
    x = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
    v = per_sample_augment(x, 4, get_preset("mnist"), torch.Generator().manual_seed(0))
    assert v.shape == (12, 1, 1, 28, 28) and set(v.unique().tolist()) <= {0.0, 1.0}


def test_bench_throughput_quick_writes_every_ratio(tmp_path, capsys):
    out = tmp_path / "t.json"
    assert main(["bench", "throughput", "--quick", "--methods", "vae", "--device", "cpu",
                 "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    (row,) = res["methods"]
    assert {"mfu_step", "mfu_end_to_end", "views_per_s", "paper_protocol_hours"} <= set(row)
    assert row["dataset"] == "mnist" and row["device"] == "cpu" and res["device"] == "cpu"
    # one paper epoch: ceil(60,000 / 128) end-to-end steps; the protocol: 400 epochs x 3 seeds
    assert row["paper_epoch_seconds"] == pytest.approx(469 * row["end_to_end_ms"] / 1e3)
    assert row["paper_protocol_hours"] == pytest.approx(
        row["paper_epoch_seconds"] * 400 * 3 / 3600)
    assert [a["preset"] for a in res["augmentation"]] == ["mnist", "cifar10"]
    assert all(a["augmentation_speedup"] > 0 for a in res["augmentation"])
    assert res["roofline"]["peak_gflops"] > 0 and res["evaluation"]["knn_seconds"] > 0
    # 3 seeds stacked (bench --parallel 3) against one at a time, in the same rounds
    (st,) = res["stacked"]
    assert (st["method"], st["k"]) == ("vae", 3) and "step_ms_graphed" not in st
    assert st["speedup_stacked"] == pytest.approx(3 * st["step_ms_one"] / st["step_ms_stacked"])
    printed = capsys.readouterr().out
    assert "MFU step" in printed and "wall time" in printed
    assert "| vae | mnist | 1 | 3 |" in printed
    assert main(["bench", "throughput", "--methods", "moco"]) == 2
    assert main(["bench", "throughput", "--datasets", "digits"]) == 2
    if not torch.cuda.is_available():
        capsys.readouterr()
        assert main(["bench", "throughput", "--device", "cuda"]) == 2
        assert "CUDA is not available" in capsys.readouterr().err
    assert main(["bench", "--methods", "vae"]) == 2  # a grid needs --datasets and --out
