"""`probssl bench throughput`: runs end to end and reports every ratio the issue asks for.
(Speed itself is measured by the benchmark, never asserted here.)"""

import json

import torch

from probssl.cli import main
from probssl.data.augment import get_preset
from probssl.experiments.throughput import count_flops, matmul_bound_seconds, per_sample_augment


def test_flop_count_and_matmul_shapes_of_a_known_layer():
    layer = torch.nn.Linear(30, 20)
    x = torch.randn(8, 30, requires_grad=True)
    # forward 2·8·30·20; backward: grad of the input and of the weight, as much again each
    assert count_flops(lambda: layer(x).sum().backward()) == 3 * 2 * 8 * 30 * 20
    assert matmul_bound_seconds(lambda: layer(x).sum().backward(), 0.01) > 0


def test_per_sample_reference_makes_the_same_kind_of_views():
    x = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
    v = per_sample_augment(x, 4, get_preset("mnist"), torch.Generator().manual_seed(0))
    assert v.shape == (12, 1, 1, 28, 28) and set(v.unique().tolist()) <= {0.0, 1.0}


def test_bench_throughput_quick_writes_every_ratio(tmp_path, capsys):
    out = tmp_path / "t.json"
    assert main(["bench", "throughput", "--quick", "--methods", "vae", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    (row,) = res["methods"]
    assert {"mfu_step", "mfu_end_to_end", "views_per_s", "matmul_fraction_step"} <= set(row)
    assert [a["preset"] for a in res["augmentation"]] == ["mnist", "cifar10"]
    assert all(a["augmentation_speedup"] > 0 for a in res["augmentation"])
    assert res["roofline"]["peak_gflops"] > 0 and res["evaluation"]["knn_seconds"] > 0
    printed = capsys.readouterr().out
    assert "MFU step" in printed and "wall time" in printed
    assert main(["bench", "throughput", "--methods", "moco"]) == 2
    assert main(["bench", "--methods", "vae"]) == 2  # a grid needs --datasets and --out
