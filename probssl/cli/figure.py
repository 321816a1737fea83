"""``probssl figure``: figures from runs."""

from __future__ import annotations

import argparse

from probssl.cli.common import add_command, add_data_dir_arg, add_group, add_seed_arg, int_arg
from probssl.userio import check_output_file


def cmd_reconstructions(args: argparse.Namespace) -> int:
    from probssl.experiments.figures import reconstruction_figure  # lazy: matplotlib

    check_output_file(args.out)
    out = reconstruction_figure(args.runs, args.out, n=args.n, seed=args.seed,
                                data_dir=args.data_dir)
    print(f"wrote {out}")
    return 0


def cmd_curves(args: argparse.Namespace) -> int:
    from probssl.experiments.figures import curves_figure  # lazy: matplotlib

    check_output_file(args.out)
    print(f"wrote {curves_figure(args.runs, args.out)}")
    return 0


def register(subparsers) -> None:
    fsub = add_group(subparsers, "figure", "figure", "FIGURE", "figures from runs")
    p = add_command(fsub, "reconstructions", cmd_reconstructions,
                    "test images and each run's reconstructions")
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--out", required=True, help="PNG path")
    p.add_argument("--n", type=int_arg(1, 64), default=8, help="images per row (1-64)")
    add_seed_arg(p)
    add_data_dir_arg(p)

    p = add_command(fsub, "curves", cmd_curves,
                    "loss and online k-NN (--eval-every) against epoch for several runs")
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--out", required=True, help="PNG path")
