"""Many runs, evaluated and tabulated: ``compare`` (methods x seeds), ``bench`` (a resumable
grid, or ``bench throughput``) and ``report`` (markdown tables from a grid)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from probssl.cli.common import (
    add_command,
    add_data_dir_arg,
    add_device_arg,
    add_eval_args,
    add_input_convention_args,
    add_progress_arg,
    add_seed_args,
    add_set_arg,
    comma_list,
    eval_config,
    float_arg,
    input_convention,
    int_arg,
    method_params_for,
    seeds_of,
    train_overrides,
)
from probssl.config import TrainConfig
from probssl.errors import UserError
from probssl.experiments.throughput import METHODS as THROUGHPUT_METHODS
from probssl.experiments.throughput import (
    PAPER_DATASETS,
    bench_device,
    format_table,
    run_throughput,
)
from probssl.methods import get_method_spec
from probssl.runs.provenance import command_line, machine_line
from probssl.userio import check_output_dir, check_output_file

SET_HELP = "a parameter for every method that has it"


def cmd_compare(args: argparse.Namespace) -> int:
    from probssl.experiments.compare import compare  # lazy: scikit-learn

    methods = comma_list(args.methods)
    if not methods:
        raise UserError("--methods needs at least one method")
    for m in methods:
        get_method_spec(m)
    check_output_dir(args.out)
    seeds = list(seeds_of(args, "compare"))
    overrides = train_overrides(args)
    params = method_params_for(methods, args.assignments)
    for m in methods:
        TrainConfig(method=m, dataset=args.dataset, epochs=args.epochs, params=params[m],
                    **overrides)
    compare(methods, args.dataset, seeds, args.epochs, Path(args.out), overrides,
            eval_config(args), params=params)
    return 0


def _chosen(flag: str | None, allowed, what: str) -> list[str] | None:
    """The comma list of ``flag`` (None when not given), each name one of ``allowed``."""
    if not flag:
        return None
    names = comma_list(flag)
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise UserError(f"bench throughput {what} {', '.join(allowed)}; "
                        f"not {', '.join(unknown)}")
    return names


def cmd_throughput(args: argparse.Namespace) -> int:
    if args.json is not None:
        check_output_file(args.json, "--json")
    names = _chosen(args.methods, THROUGHPUT_METHODS, "measures")
    methods = {m: THROUGHPUT_METHODS[m] for m in names} if names else THROUGHPUT_METHODS
    datasets = _chosen(args.datasets, PAPER_DATASETS, "projects the paper's datasets")
    device = bench_device(args.device or "auto")
    t0 = time.perf_counter()
    result = run_throughput(quick=args.quick, methods=methods, device=device,
                            datasets=datasets, log=lambda m: print(m, file=sys.stderr))
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
    from probssl.experiments.bench import (  # lazy: scikit-learn
        parse_encoders,
        parse_sweep,
        plan_grid,
        run_grid,
    )

    if args.mode == "throughput":
        return cmd_throughput(args)
    for flag in ("methods", "datasets", "out"):
        if not getattr(args, flag):
            raise UserError(f"bench: --{flag} is required for a grid")
    if args.quick or args.json is not None:
        raise UserError("bench: --quick and --json belong to `bench throughput`")

    methods = comma_list(args.methods)
    datasets = comma_list(args.datasets)
    check_output_dir(args.out)
    seeds = list(seeds_of(args, "bench grid"))
    params = method_params_for(methods, args.assignments)
    plan = plan_grid(methods, datasets, seeds, preset=args.preset, epochs=args.epochs,
                     train_overrides=train_overrides(args), params=params,
                     sweep=parse_sweep(args.sweep))
    external = parse_encoders(args.encoder)
    run_grid(plan, Path(args.out), eval_config(args), progress=not args.no_progress,
             external=external, convention=input_convention(args) if external else None,
             parallel=args.parallel)
    print(f"grid in {args.out}; tables: probssl report {args.out} --out report.md")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from probssl.experiments.convergence import write_curves_report  # lazy: matplotlib
    from probssl.experiments.report import check_report_path, write_report

    check_output_file(args.out)
    grids = [Path(g) for g in args.grids]
    if len(grids) == 1:
        out = write_report(grids[0], Path(args.out))
        write_curves_report(grids, out, args.paired_with, append=True)
    else:
        for g in grids:  # --out must not be a file of any of the grids
            check_report_path(g, Path(args.out))
        out = write_curves_report(grids, Path(args.out), args.paired_with)
    print(f"wrote {out}")
    return 0


def _cell_args(p: argparse.ArgumentParser) -> None:
    """What compare and bench give every run they train."""
    p.add_argument("--lr", type=float_arg(0, lo_open=True), default=None)
    p.add_argument("--batch-size", type=int_arg(1, 1 << 24), default=None)
    p.add_argument("--eval-every", type=int_arg(0, 1_000_000), default=None, metavar="N",
                   help="online k-NN on a validation split of the training set every N "
                        "epochs, logged as knn_val in each run's metrics.jsonl (default off)")
    p.add_argument("--augmentation", default=None, metavar="NAME",
                   help="augmentation preset for every run, e.g. mnist-vflip (the paper's "
                        "vertical flip); default: each dataset's own")
    add_data_dir_arg(p)
    add_device_arg(p)


def register(subparsers) -> None:
    p = add_command(subparsers, "compare", cmd_compare,
                    "methods x seeds on one dataset, evaluated, tabulated")
    p.add_argument("--methods", required=True, help="comma-separated, e.g. vae,random")
    add_set_arg(p, SET_HELP)
    p.add_argument("--dataset", required=True)
    add_seed_args(p, "0,1,2")
    p.add_argument("--epochs", type=int_arg(0, 1_000_000), default=20)
    _cell_args(p)
    p.add_argument("--out", required=True)
    add_eval_args(p)

    p = add_command(subparsers, "bench", cmd_bench,
                    "methods x datasets x seeds (x a swept parameter) grid, resumable; "
                    "`bench throughput`: speed against the measured roofline")
    p.add_argument("mode", nargs="?", default="grid", choices=["grid", "throughput"],
                   help="grid (default) or throughput")
    p.add_argument("--quick", action="store_true", help="throughput: shorter timings")
    p.add_argument("--json", default=None, help="throughput: also write the results as JSON")
    p.add_argument("--methods", default=None, help="comma-separated")
    p.add_argument("--datasets", default=None, help="comma-separated")
    add_seed_args(p, "0,1,2")
    p.add_argument("--preset", default=None, help="paper, reference-code or quick")
    p.add_argument("--epochs", type=int_arg(0, 1_000_000), default=None,
                   help="overrides the preset's")
    p.add_argument("--sweep", default=None, help="KEY=V1,V2,... e.g. J=2,4,6,8,10")
    p.add_argument("--parallel", type=int_arg(1, 64), default=1, metavar="K",
                   help="train up to K seeds of a cell at once as one batched model (same "
                        "results as one by one, within float tolerance; methods that cannot "
                        "be stacked, e.g. moco and rpm, are trained one by one; for GPUs: on a "
                        "CPU it is slower, docs/PERFORMANCE.md)")
    add_set_arg(p, SET_HELP)
    _cell_args(p)
    p.add_argument("--out", default=None, help="grid folder (required for a grid)")
    g = p.add_argument_group("encoders trained elsewhere, as rows beside the methods")
    g.add_argument("--encoder", action="append", default=None, metavar="NAME=SPEC[@CODE]",
                   help="repeatable; SPEC as for `evaluate --encoder` (a .pt2, TorchScript, "
                        "probssl export, or weights with @module:builder)")
    add_input_convention_args(g)
    add_progress_arg(p)
    add_eval_args(p)

    p = add_command(subparsers, "report", cmd_report,
                    "markdown tables (paper layout) from a bench grid; learning curves, "
                    "convergence and paired differences from one or more grids")
    p.add_argument("grids", nargs="+", metavar="GRID",
                   help="bench grid folder(s); several are merged into one table whose rows "
                        "are labelled 'method' or 'method key=value' (a swept grid)")
    p.add_argument("--out", required=True, help="markdown file (curves: NAME-curves.png)")
    p.add_argument("--paired-with", default=None, metavar="LABEL",
                   help="also tabulate every run's per-seed differences against this row, "
                        "e.g. 'simvae n_views=10'")
