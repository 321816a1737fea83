"""The ``probssl`` command.

Every user mistake (argument, config, file, missing data) ends with one line on stderr and
exit status 2; a diverged training exits with 3; a bug prints one line naming a crash log with
its traceback and exits with 1 (``probssl --debug ...`` prints the traceback instead).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from probssl import __version__
from probssl.config import (
    TrainConfig,
    build_dataclass,
    field_names,
    load_config_file,
    parse_assignments,
)
from probssl.errors import (
    CheckpointWriteFailed,
    TrainingDiverged,
    TrainingInterrupted,
    UserError,
)
from probssl.userio import MAX_INT, check_output_dir, check_output_file

# TrainConfig fields exposed as flags (flag name -> field); the rest via the config file.
TRAIN_FLAGS: dict[str, tuple[str, type, str]] = {
    "method": ("method", str, "method name (see `probssl methods`)"),
    "dataset": ("dataset", str, "dataset name, folder:PATH or npz:FILE"),
    "preset": ("preset", str, "paper, reference-code or quick (flags and config override it)"),
    "data_dir": ("data_dir", str, "folder holding the dataset's files (skips the cache)"),
    "augmentation": ("augmentation", str, "augmentation preset (default: the dataset's)"),
    "aug_strength": ("aug_strength", float, "scale of the preset's crop and colour jitter "
                     "(0 none, 1 as published)"),
    "views": ("views", str, "augment (J augmentations) or next-frame (frames t..t+J-1)"),
    "epochs": ("epochs", int, "training epochs"),
    "batch_size": ("batch_size", int, "images per step per process"),
    "lr": ("lr", float, "Adam learning rate"),
    "seed": ("seed", int, "random seed"),
    "checkpoint_every": ("checkpoint_every", int, "also checkpoint every N steps inside an "
                         "epoch (0: at epoch ends only)"),
    "device": ("device", str, "auto, cpu, cuda or cuda:N"),
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line and exit status 2, and no abbreviations
    (``--epoch`` must not silently mean ``--epochs``)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{self.prog}: {message}")


def _int_arg(lo: int = 0, hi: int = MAX_INT) -> Callable[[str], int]:
    """argparse type: an integer within [lo, hi] (checked where the number enters)."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(
                f"must lie in [{lo}, {hi}]; got {text.strip()[:40]}")
        return value

    parse.__name__ = "int"
    return parse


def _float_arg(lo: float = 0.0, hi: float = math.inf, lo_open: bool = False
               ) -> Callable[[str], float]:
    """argparse type: a finite float within range (NaN and inf refused)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be finite; got {text}")
        if value < lo or (lo_open and value == lo) or value > hi:
            bound = f"> {lo}" if lo_open else f">= {lo}"
            raise argparse.ArgumentTypeError(
                f"must be {bound}" + (f" and <= {hi}" if math.isfinite(hi) else "")
                + f"; got {text}")
        return value

    parse.__name__ = "float"
    return parse


def _device_arg(text: str) -> str:
    """argparse type: auto, cpu, cuda or cuda:N, and CUDA must exist when asked for."""
    from probssl.train.trainer import check_device

    try:
        return check_device(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_device_arg.__name__ = "device"


def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML/YAML/JSON file of settings (flags override it)")
    for flag, (_, tp, help_) in TRAIN_FLAGS.items():
        p.add_argument("--" + flag.replace("_", "-"), dest=flag, type=str, default=None,
                       metavar=tp.__name__.upper(), help=help_)
    p.add_argument("--critic", default=None, help="shortcut for --set critic=NAME (rpm)")
    p.add_argument("--prior", default=None, help="shortcut for --set prior=NAME (rpm)")
    p.add_argument("--set", dest="assignments", action="append", default=[],
                   metavar="KEY=VALUE", help="a method parameter, e.g. --set beta=4 (repeatable)")
    p.add_argument("--download", action="store_true", default=None,
                   help="download the dataset first if it is not cached")
    p.add_argument("--no-amp", dest="amp", action="store_false", default=None,
                   help="disable bfloat16 autocast on CUDA")
    p.add_argument("--compile", action="store_true", default=None,
                   help="torch.compile the training forward (GPU; on CPU needs a C++ compiler)")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """defaults < config file < flags; every value validated by TrainConfig."""
    from probssl.config import parse_scalar
    from probssl.methods import get_method_spec

    values: dict[str, Any] = {}
    if args.config:
        values.update(load_config_file(args.config))
    where = args.config or "command line"
    for flag, (fld, tp, _) in TRAIN_FLAGS.items():
        text = getattr(args, flag)
        if text is not None:
            values[fld] = parse_scalar(text, tp, f"--{flag.replace('_', '-')}")
    for fld in ("download", "amp", "compile"):
        if getattr(args, fld) is not None:
            values[fld] = getattr(args, fld)
    params = values.pop("params", None)
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise UserError(f"{where}: 'params' must be a table of method parameters, not "
                        f"{type(params).__name__}")
    params = dict(params)
    method = values.get("method", TrainConfig.method)
    if not isinstance(method, str):
        raise UserError(f"{where}: key 'method' must be str; got {method!r}")
    shortcuts = [f"{k}={getattr(args, k)}" for k in ("critic", "prior")
                 if getattr(args, k, None) is not None]
    args.assignments = list(args.assignments) + shortcuts
    if args.assignments:
        spec = get_method_spec(method)
        params.update(parse_assignments(args.assignments, spec.config_cls,
                                        f"params for method '{method}'"))
    preset = values.get("preset")
    if preset is not None:
        from probssl.config import preset_values

        if not isinstance(preset, str):
            raise UserError(f"{where}: key 'preset' must be str; got {preset!r}")
        dataset = values.get("dataset", TrainConfig.dataset)
        p_train, p_params = preset_values(preset, method, str(dataset))
        values = {**p_train, **values}
        params = {**p_params, **params}
    values["params"] = params
    return build_dataclass(TrainConfig, values, f"config ({where})")


def cmd_train(args: argparse.Namespace) -> int:
    from probssl.train import train

    check_output_dir(args.out)
    cfg = train_config_from_args(args)
    result = train(cfg, Path(args.out), resume=args.resume, progress=not args.no_progress)
    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun only rank 0 reports
    last = result.history[-1] if result.history else {}
    shown = ", ".join(f"{k} {v:.4g}" for k, v in last.items()
                      if k not in ("epoch", "seconds", "views_per_s"))
    print(f"trained {cfg.method} on {cfg.dataset} for {result.epochs_done} epochs -> "
          f"{args.out}" + (f" ({shown})" if shown else ""))
    return 0


def _eval_config(args: argparse.Namespace):
    from probssl.evaluate import EvalConfig

    return EvalConfig(k_max=args.k_max, knn_metric=args.knn_metric,
                      probe_epochs=args.probe_epochs, seed=args.eval_seed,
                      mlp_probe=not args.no_mlp_probe, gmm_n_init=args.gmm_n_init,
                      fid_features=args.fid_features, fid_samples=args.fid_samples)


def format_eval(result: dict) -> str:
    knn = result["knn"]
    return (f"{result['method']} on {result['dataset']} (seed {result['seed']}, epoch "
            f"{result['epoch']}): kNN best {100 * knn['best']:.2f}% (k={knn['best_k']}), "
            f"kNN val-k {100 * result['knn_val_k']['accuracy']:.2f}% "
            f"(k={result['knn_val_k']['k']}), linear probe "
            f"{100 * result['linear_probe']['test_accuracy']:.2f}%"
            + (f", MLP probe {100 * result['mlp_probe']['test_accuracy']:.2f}%"
               if "mlp_probe" in result else "")
            + (f", GMM accuracy {100 * result['gmm']['accuracy']:.2f}% (NMI "
               f"{result['gmm']['nmi']:.3f}, ARI {result['gmm']['ari']:.3f})"
               if "gmm" in result else ""))


def format_extras(result: dict) -> list[str]:
    lines = []
    if "mse" in result:
        lines.append(f"reconstruction MSE {result['mse']:.5f}")
    if "fid" in result:
        f = result["fid"]
        lines.append(f"{'FID' if f['inception'] else 'Fréchet distance'} {f['value']:.3f} "
                     f"({f['n']} samples; features: {f['features']})")
    if "factors" in result:
        lines.append("style/content factors: " + ", ".join(
            f"{k} {v['metric']} {v['value']:.3f}" for k, v in result["factors"].items()))
    if "attributes" in result:
        a = result["attributes"]
        mean = sum(a["attributes"].values()) / len(a["attributes"])
        lines.append(f"attributes ({a['probe']} probe): mean accuracy over "
                     f"{len(a['attributes'])} {100 * mean:.1f}%"
                     + (f", hair colour (5 classes) {100 * a['hair_colour']:.1f}%"
                        if "hair_colour" in a else ""))
    return lines


def cmd_evaluate(args: argparse.Namespace) -> int:
    from probssl.evaluate import evaluate_run
    from probssl.evaluate.protocol import extra_evaluations
    from probssl.runs.format import load_run, write_json_atomic

    cfg = _eval_config(args)
    loaded = load_run(args.run, data_dir=args.data_dir, device=args.device)
    result = evaluate_run(loaded, cfg, device=args.device)
    result.update(extra_evaluations(loaded, cfg))
    write_json_atomic(Path(args.run) / "eval.json", result)
    print(format_eval(result))
    for line in format_extras(result):
        print(line)
    if "pair_retrieval" in result:
        pr = result["pair_retrieval"]
        print(f"held-out pair retrieval (Eq. 34): top-1 {100 * pr['top1']:.1f}% among "
              f"{pr['batch_size']} candidates (chance {100 * pr['chance']:.1f}%)")
    print("kNN per k: " + " ".join(f"{k}:{100 * v:.1f}" for k, v in result["knn"]["per_k"].items()))
    print(cfg.footer())
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from probssl.evaluate import run_embeddings
    from probssl.runs.format import load_run
    from probssl.userio import atomic_write

    out = check_output_file(args.out)
    if out.suffix != ".npz":  # np.savez would silently append it
        out = check_output_file(out.with_name(out.name + ".npz"))
    loaded = load_run(args.run, data_dir=args.data_dir, device=args.device)
    z, y = run_embeddings(loaded, args.split, device=args.device)
    arrays = {"z": z} if y is None else {"z": z, "labels": y}
    atomic_write(out, lambda fh: np.savez(fh, **arrays))
    print(f"wrote {out}: z {z.shape}" + ("" if y is None else f", labels {y.shape}"))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from probssl.export import export_encoder
    from probssl.runs.format import load_run

    out = check_output_file(args.out)
    if out.suffix == ".py":
        raise UserError(f"--out {out}: the weights and the generated encoder source "
                        f"({out.name}) would share one name; use e.g. --out "
                        f"{out.with_suffix('.pt')}")
    check_output_file(out.with_suffix(".py"), "--out (its .py source)")
    loaded = load_run(args.run, data_dir=args.data_dir)
    pt, src = export_encoder(loaded, args.out)
    enc = loaded.method.encoder
    print(f"wrote {pt} (state_dict of the encoder) and {src} (pure-PyTorch build_encoder()).")
    print(f"Rebuild: net = build_encoder(); net.load_state_dict(torch.load('{pt.name}')); "
          f"z = net(x)[:, :{enc.latent_dim}]")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from probssl.data import DATASETS, download_dataset

    if args.action == "list":
        print(f"{'name':<15}{'shape':<12}{'classes':<9}{'augment':<15}{'arch/z':<11}how to get")
        for info in DATASETS.values():
            shape = "x".join(map(str, info.image_shape))
            print(f"{info.name:<15}{shape:<12}{info.num_classes!s:<9}{info.augmentation:<15}"
                  f"{info.architecture + '/' + str(info.latent_dim):<11}{info.how_to_get}")
        print("folder:PATH    an image folder (one sub-folder per class, or unlabelled)")
        print("npz:FILE       arrays x (N,H,W[,C] or N,C,H,W) and optional y, x_test, y_test")
        return 0
    if not args.name:
        raise UserError("datasets download needs a dataset NAME")
    path = download_dataset(args.name, args.cache_dir)
    print(f"{args.name} is ready in {path}")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from probssl.methods import METHODS

    for spec in METHODS.values():
        params = ", ".join(field_names(spec.config_cls))
        print(f"{spec.name:<10} {spec.description}\n{'':<10} params: {params}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from probssl.demo import run_demo

    out = check_output_dir(args.out)
    report = run_demo(out, epochs=args.epochs, seeds=list(_seeds(args, "demo")),
                      progress=not args.no_progress)
    print(f"report: {report}")
    return 0


def _int_list(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UserError(f"--seeds expects comma-separated integers; got {text[:60]!r}"
                        ) from None


def method_params_for(methods: list[str], assignments: list[str]) -> dict[str, dict]:
    """Give each ``KEY=VALUE`` to every method whose config has KEY (at least one must)."""
    from probssl.methods import get_method_spec

    out: dict[str, dict] = {m: {} for m in methods}
    for item in assignments:
        key = item.split("=", 1)[0].strip().replace("-", "_")
        takers = [m for m in methods if key in field_names(get_method_spec(m).config_cls)]
        if not takers:
            raise UserError(f"--set {item}: none of {', '.join(methods)} has a parameter "
                            f"'{key}'")
        for m in takers:
            out[m].update(parse_assignments([item], get_method_spec(m).config_cls,
                                            f"params for method '{m}'"))
    return out


def cmd_compare(args: argparse.Namespace) -> int:
    from probssl.experiments.compare import compare
    from probssl.methods import get_method_spec

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise UserError("--methods needs at least one method")
    for m in methods:
        get_method_spec(m)
    check_output_dir(args.out)
    seeds = list(_seeds(args, "compare"))
    overrides: dict[str, Any] = {"device": args.device}
    if args.lr is not None:
        overrides["lr"] = args.lr
    if args.batch_size is not None:
        overrides["batch_size"] = args.batch_size
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    params = method_params_for(methods, args.assignments)
    for m in methods:
        TrainConfig(method=m, dataset=args.dataset, epochs=args.epochs, params=params[m],
                    **overrides)
    compare(methods, args.dataset, seeds, args.epochs, Path(args.out), overrides,
            _eval_config(args), params=params)
    return 0


def cmd_verify_theory(args: argparse.Namespace) -> int:
    from probssl.experiments.verify_theory import format_table, run
    from probssl.runs.provenance import command_line, machine_line

    if args.json is not None:
        check_output_file(args.json, "--json")
    rows, seconds = run(args.seed, args.scale)
    print(format_table(rows))
    failed = [r for r in rows if not r.passed]
    print(f"\n{len(rows) - len(failed)}/{len(rows)} identities hold. Command: "
          f"`{command_line()}`; machine: {machine_line()}; wall time {seconds:.1f} s.")
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps([r.to_json() for r in rows], indent=2) + "\n")
    return 1 if failed else 0


def cmd_throughput(args: argparse.Namespace) -> int:
    from probssl.experiments.throughput import METHODS, format_table, run_throughput
    from probssl.runs.provenance import command_line, machine_line

    if args.json is not None:
        check_output_file(args.json, "--json")
    methods = METHODS
    if args.methods:
        names = [m.strip() for m in args.methods.split(",") if m.strip()]
        unknown = [m for m in names if m not in METHODS]
        if unknown:
            raise UserError(f"bench throughput measures {', '.join(METHODS)}; not "
                            f"{', '.join(unknown)}")
        methods = {m: METHODS[m] for m in names}
    t0 = time.perf_counter()
    result = run_throughput(quick=args.quick, methods=methods,
                            log=lambda m: print(m, file=sys.stderr))
    result.update(command=command_line(), machine=machine_line(),
                  wall_seconds=time.perf_counter() - t0)
    print(format_table(result))
    print(f"\n`{result['command']}`; machine: {result['machine']}; wall time "
          f"{result['wall_seconds']:.0f} s.")
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from probssl.experiments.bench import parse_sweep, plan_grid, run_grid

    if args.mode == "throughput":
        return cmd_throughput(args)
    for flag in ("methods", "datasets", "out"):
        if not getattr(args, flag):
            raise UserError(f"bench: --{flag} is required for a grid")
    if args.quick or args.json is not None:
        raise UserError("bench: --quick and --json belong to `bench throughput`")

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    check_output_dir(args.out)
    seeds = list(_seeds(args, "bench grid"))
    overrides: dict[str, Any] = {"device": args.device}
    for key in ("lr", "batch_size", "data_dir"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    params = method_params_for(methods, args.assignments)
    plan = plan_grid(methods, datasets, seeds, preset=args.preset, epochs=args.epochs,
                     train_overrides=overrides, params=params, sweep=parse_sweep(args.sweep))
    run_grid(plan, Path(args.out), _eval_config(args), progress=not args.no_progress)
    print(f"grid in {args.out}; tables: probssl report {args.out} --out report.md")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from probssl.experiments.report import write_report

    check_output_file(args.out)
    out = write_report(Path(args.grid), Path(args.out))
    print(f"wrote {out}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from probssl.evaluate.generate import class_conditional_samples, frozen_decoder
    from probssl.experiments.figures import sample_grid
    from probssl.runs.format import load_run

    if args.out is not None:
        check_output_file(args.out)
    loaded = load_run(args.run, data_dir=args.data_dir)
    images, labels = class_conditional_samples(loaded, args.per_class, args.seed)
    _, source = frozen_decoder(loaded)
    out = Path(args.out) if args.out else Path(args.run) / "samples.png"
    sample_grid(images, labels, args.per_class, out,
                f"{loaded.resolved.train.method} on {loaded.resolved.data.name}: z ~ N(mean_y, "
                f"Cov_y) fitted per label, decoded ({source})")
    print(f"wrote {out}: {args.per_class} samples for each of {len(set(labels))} labels")
    return 0


def cmd_train_decoder(args: argparse.Namespace) -> int:
    from probssl.evaluate.generate import reconstruction_mse, train_decoder
    from probssl.runs.format import load_run

    loaded = load_run(args.run, data_dir=args.data_dir)
    info = train_decoder(loaded, epochs=args.epochs, lr=args.lr, patience=args.patience,
                         progress=not args.no_progress)
    mse = reconstruction_mse(loaded, "test")
    print(f"decoder fitted on the frozen encoder of {args.run} (epoch {info['epoch']}): "
          f"{info['epochs_run']} epochs, best validation MSE {info['val_mse']:.4f}, "
          f"test MSE {mse:.4f} -> {Path(args.run) / 'decoder.pt'}")
    return 0


def cmd_figure(args: argparse.Namespace) -> int:
    from probssl.experiments.figures import reconstruction_figure

    check_output_file(args.out)
    out = reconstruction_figure(args.runs, args.out, n=args.n, seed=args.seed,
                                data_dir=args.data_dir)
    print(f"wrote {out}")
    return 0


def _add_seed_args(p: argparse.ArgumentParser, default: str) -> None:
    """One meaning everywhere: ``--seeds`` is a list (``--seeds 3`` is seed 3), ``--n-seeds N``
    a count (seeds 0..N-1)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--seeds", default=None, metavar="LIST",
                   help=f"comma-separated seeds, e.g. 0,3,7 (3 alone is seed 3; default "
                        f"{default})")
    g.add_argument("--n-seeds", type=_int_arg(1, 1000), default=None, metavar="N",
                   help="run seeds 0..N-1")
    p.set_defaults(seeds_default=default)


def _seeds(args: argparse.Namespace, what: str) -> tuple[int, ...]:
    """The seeds a command will run (validated), announced on stderr before any work."""
    if getattr(args, "n_seeds", None) is not None:
        seeds = tuple(range(args.n_seeds))
    else:
        text = args.seeds if args.seeds is not None else args.seeds_default
        seeds = tuple(_int_list(text))
        if not seeds:
            raise UserError("--seeds needs at least one seed, e.g. --seeds 0,1,2 or "
                            "--n-seeds 3")
    for s in seeds:
        if not 0 <= s <= MAX_INT:
            raise UserError(f"--seeds: seed {s} is outside [0, {MAX_INT}]")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds lists a seed twice: {','.join(map(str, seeds))}")
    print(f"{what}: seeds {', '.join(map(str, seeds))}")  # stdout: stderr is for errors
    return seeds


def cmd_experiment_moving_balls(args: argparse.Namespace) -> int:
    from probssl.experiments.moving_balls import config_from_args, run_experiment
    from probssl.runs.provenance import command_line, machine_line
    from probssl.train.trainer import resolve_device

    methods = None
    if args.methods is not None:
        methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    out = check_output_dir(args.out)
    given = args.seeds is not None or args.n_seeds is not None
    cfg = config_from_args(args.quick, _seeds(args, "moving balls") if given else None,
                           epochs=args.epochs, frames=args.frames, lr=args.lr,
                           balls=args.balls, methods=methods, unit=args.unit,
                           length_scale=args.length_scale,
                           device=str(resolve_device(args.device)))
    if not given:
        print(f"moving balls: seeds {', '.join(map(str, cfg.seeds))}")
    metrics = run_experiment(cfg, out, progress=not args.no_progress, command=command_line(),
                             machine=machine_line())
    print((out / "table.md").read_text())
    print(f"wrote {out / 'table.md'}, {out / 'metrics.json'}, {out / 'fig1.png'} "
          f"in {metrics['wall_s']:.0f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="probssl", description=__doc__.splitlines()[0],
                     epilog="probssl --debug COMMAND ... prints the traceback of an internal "
                            "error (also PROBSSL_DEBUG=1)")
    parser.add_argument("--version", action="version", version=f"probssl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("train", help="train a method; writes a run directory")
    _add_train_args(p)
    p.set_defaults(func=cmd_train)

    def eval_args(p):
        p.add_argument("--k-max", type=_int_arg(1, 1000), default=15,
                       help="kNN k = 1..K (default 15)")
        p.add_argument("--knn-metric", default="euclidean", help="euclidean or cosine")
        p.add_argument("--probe-epochs", type=_int_arg(1, 100_000), default=200)
        p.add_argument("--no-mlp-probe", action="store_true", help="skip the MLP probe")
        p.add_argument("--gmm-n-init", type=_int_arg(0, 10_000), default=20,
                       help="GMM restarts (paper 200, authors' code 20); 0 skips the GMM")
        p.add_argument("--fid-features", default="classifier",
                       help="classifier (offline, not comparable to Inception FID), "
                            "inception:PATH (TorchScript Inception-v3) or none")
        p.add_argument("--fid-samples", type=_int_arg(2, 1_000_000), default=5000)
        p.add_argument("--eval-seed", type=_int_arg(), default=0)

    def run_args(p):
        p.add_argument("run", help="run directory")
        p.add_argument("--data-dir", default=None, help="folder holding the dataset's files")
        p.add_argument("--device", type=_device_arg, default="cpu")

    p = sub.add_parser("evaluate", help="kNN and linear probe on a run's frozen encoder")
    run_args(p)
    eval_args(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("embed", help="write a split's encoder means and labels to .npz")
    run_args(p)
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("export", help="export the encoder as a plain state_dict + code")
    p.add_argument("run")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("datasets", help="list or download datasets")
    p.add_argument("action", choices=["list", "download"])
    p.add_argument("name", nargs="?")
    p.add_argument("--cache-dir", default=None, help="default $PROBSSL_DATA or ~/.cache/probssl")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("methods", help="list methods and their parameters")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("compare", help="methods x seeds on one dataset, evaluated, tabulated")
    p.add_argument("--methods", required=True, help="comma-separated, e.g. vae,random")
    p.add_argument("--set", dest="assignments", action="append", default=[],
                   metavar="KEY=VALUE", help="a parameter for every method that has it")
    p.add_argument("--dataset", required=True)
    _add_seed_args(p, "0,1,2")
    p.add_argument("--epochs", type=_int_arg(0, 1_000_000), default=20)
    p.add_argument("--lr", type=_float_arg(0, lo_open=True), default=None)
    p.add_argument("--batch-size", type=_int_arg(1, 1 << 24), default=None)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", type=_device_arg, default="auto")
    p.add_argument("--out", required=True)
    eval_args(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("bench", help="methods x datasets x seeds (x a swept parameter) grid, "
                       "resumable; `bench throughput`: speed against the measured roofline")
    p.add_argument("mode", nargs="?", default="grid", choices=["grid", "throughput"],
                   help="grid (default) or throughput")
    p.add_argument("--quick", action="store_true", help="throughput: shorter timings")
    p.add_argument("--json", default=None, help="throughput: also write the results as JSON")
    p.add_argument("--methods", default=None, help="comma-separated")
    p.add_argument("--datasets", default=None, help="comma-separated")
    _add_seed_args(p, "0,1,2")
    p.add_argument("--preset", default=None, help="paper, reference-code or quick")
    p.add_argument("--epochs", type=_int_arg(0, 1_000_000), default=None,
                   help="overrides the preset's")
    p.add_argument("--sweep", default=None, help="KEY=V1,V2,... e.g. J=2,4,6,8,10")
    p.add_argument("--set", dest="assignments", action="append", default=[],
                   metavar="KEY=VALUE", help="a parameter for every method that has it")
    p.add_argument("--lr", type=_float_arg(0, lo_open=True), default=None)
    p.add_argument("--batch-size", type=_int_arg(1, 1 << 24), default=None)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", type=_device_arg, default="auto")
    p.add_argument("--out", default=None, help="grid folder (required for a grid)")
    p.add_argument("--no-progress", action="store_true")
    eval_args(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("report", help="markdown tables (paper layout) from a bench grid")
    p.add_argument("grid")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("verify-theory",
                       help="check every RPM identity numerically on closed-form problems")
    p.add_argument("--json", default=None, help="also write the rows as JSON")
    p.add_argument("--seed", type=_int_arg(), default=0)
    p.add_argument("--scale", type=_float_arg(0.01, 100.0), default=1.0,
                   help="Monte-Carlo sample-size multiplier in [0.01, 100] (default 1)")
    p.set_defaults(func=cmd_verify_theory)

    p = sub.add_parser("sample", help="class-conditional samples: a Gaussian per label, decoded")
    p.add_argument("run")
    p.add_argument("--per-class", type=_int_arg(1, 1000), default=8)
    p.add_argument("--seed", type=_int_arg(), default=0)
    p.add_argument("--out", default=None, help="PNG path (default RUN/samples.png)")
    p.add_argument("--data-dir", default=None)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("train-decoder",
                       help="fit a decoder on a run's frozen encoder (MSE, early stopping)")
    p.add_argument("run")
    p.add_argument("--epochs", type=_int_arg(1, 1_000_000), default=200)
    p.add_argument("--lr", type=_float_arg(0, lo_open=True), default=1e-4)
    p.add_argument("--patience", type=_int_arg(1, 1_000_000), default=10)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train_decoder)

    p = sub.add_parser("figure", help="figures from runs")
    fsub = p.add_subparsers(dest="figure", metavar="FIGURE", parser_class=_Parser)
    fsub.required = True
    p = fsub.add_parser("reconstructions", help="test images and each run's reconstructions")
    p.add_argument("runs", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=_int_arg(1, 64), default=8, help="images per row (1-64)")
    p.add_argument("--seed", type=_int_arg(), default=0)
    p.add_argument("--data-dir", default=None)
    p.set_defaults(func=cmd_figure)

    p = sub.add_parser("experiment", help="paper reproductions")
    esub = p.add_subparsers(dest="experiment", metavar="EXPERIMENT", parser_class=_Parser)
    esub.required = True
    p = esub.add_parser("moving-balls", help="infonce-rpm-v3 Fig. 1: RBF vs bilinear critic")
    p.add_argument("--out", default="results/moving-balls")
    _add_seed_args(p, "0,1,2,3,4 (--quick: 0,1)")
    p.add_argument("--quick", action="store_true",
                   help="64x64 frames, 160 frames, 4 epochs, 2 seeds: seconds, for tests")
    p.add_argument("--methods", default=None,
                   help="comma list of rbf, bilinear, supervised, random (default all)")
    p.add_argument("--balls", default=None, help="coloured (default) or identical")
    p.add_argument("--epochs", type=_int_arg(1, 1_000_000), default=None)
    p.add_argument("--frames", type=_int_arg(1, 10_000_000), default=None)
    p.add_argument("--lr", type=_float_arg(-math.inf), default=None)
    p.add_argument("--unit", type=_float_arg(0, lo_open=True), default=None,
                   help="critic coordinates: pixels from the frame centre divided by this")
    p.add_argument("--length-scale", type=_float_arg(-math.inf), default=None,
                   help="the RBF critic's initial length-scale (default 1)")
    p.add_argument("--device", type=_device_arg, default="auto")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_experiment_moving_balls)

    p = sub.add_parser("demo", help="the showcase: moving balls, SimVAE vs SimCLR vs VAE, "
                       "content/style, reconstructions; one report")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--epochs", type=_int_arg(1, 1_000_000), default=30,
                   help="epochs on digits (default 30)")
    _add_seed_args(p, "0,1")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``probssl`` command; returns its exit status.

    0 success; 2 bad input (one line naming what is wrong); 3 training diverged; 4 a
    checkpoint could not be written; 130 interrupted; 1 an internal error (a bug): one line
    saying where the full traceback was written (``--debug`` prints it instead).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv[:1] or bool(os.environ.get("PROBSSL_DEBUG"))
    if argv[:1] == ["--debug"]:
        argv = argv[1:]
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return int(args.func(args) or 0)
    except (UserError, TrainingDiverged, TrainingInterrupted, CheckpointWriteFailed) as exc:
        # expected failures: one line and the class's exit status, never a traceback
        what = {TrainingDiverged: "training diverged", TrainingInterrupted: "interrupted"}
        print(f"probssl: {what.get(type(exc), 'error')}: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("probssl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `probssl ... | head`: the reader left; nothing more to say
        return 1
    except Exception as exc:  # last resort: a bug, never a wall of text
        if debug:
            raise
        log = _write_crash_log(argv)
        where = f"full traceback in {log}" if log else "rerun with --debug for the traceback"
        print(f"probssl: internal error: {type(exc).__name__}: {_one_line(exc)} ({where}; "
              "please report it)", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 500 else text[:497] + "..."


def _write_crash_log(argv: list[str]) -> str | None:
    import tempfile
    import traceback

    try:
        fd, path = tempfile.mkstemp(prefix="probssl-crash-", suffix=".log")
        with os.fdopen(fd, "w") as fh:
            fh.write(f"probssl {__version__}; argv: {argv!r}\n")
            fh.write(traceback.format_exc())
        return path
    except OSError:
        return None


def entry() -> None:
    """The ``probssl`` console script and ``python -m probssl``.

    Under torchrun a process leaves through ``exit_process`` (no interpreter finalisation),
    so a job that saved its results can never abort at exit (train/distributed.py).
    """
    code = main()
    from probssl.train.distributed import exit_process, joined_process_group

    if joined_process_group():
        exit_process(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
