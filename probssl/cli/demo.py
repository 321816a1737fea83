"""``probssl demo``: the showcase report."""

from __future__ import annotations

import argparse

from probssl.cli.common import add_command, add_progress_arg, add_seed_args, int_arg, seeds_of
from probssl.userio import check_output_dir


def cmd_demo(args: argparse.Namespace) -> int:
    from probssl.demo import run_demo  # lazy: scikit-learn, matplotlib

    out = check_output_dir(args.out)
    report = run_demo(out, epochs=args.epochs, seeds=list(seeds_of(args, "demo")),
                      progress=not args.no_progress)
    print(f"report: {report}")
    return 0


def register(subparsers) -> None:
    p = add_command(subparsers, "demo", cmd_demo,
                    "the showcase: moving balls, SimVAE vs SimCLR vs VAE, content/style, "
                    "reconstructions; one report")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--epochs", type=int_arg(1, 1_000_000), default=30,
                   help="epochs on digits (default 30)")
    add_seed_args(p, "0,1")
    add_progress_arg(p)
