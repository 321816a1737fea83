"""Paper reproductions: ``experiment moving-balls`` and ``verify-theory``."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from probssl.cli.common import (
    add_command,
    add_device_arg,
    add_group,
    add_progress_arg,
    add_seed_arg,
    add_seed_args,
    comma_list,
    device_of,
    float_arg,
    int_arg,
    seeds_given,
    seeds_of,
)
from probssl.experiments.verify_theory import format_table, run
from probssl.runs.provenance import command_line, machine_line
from probssl.userio import check_output_dir, check_output_file


def cmd_moving_balls(args: argparse.Namespace) -> int:
    from probssl.experiments.moving_balls import config_from_args, run_experiment  # matplotlib

    methods = None if args.methods is None else tuple(comma_list(args.methods))
    out = check_output_dir(args.out)
    given = seeds_given(args)
    cfg = config_from_args(args.quick, seeds_of(args, "moving balls") if given else None,
                           epochs=args.epochs, frames=args.frames, lr=args.lr,
                           balls=args.balls, methods=methods, coordinates=args.coordinates,
                           length_scale=args.length_scale, device=str(device_of(args)),
                           checkpoint_every=args.checkpoint_every, negatives=args.negatives,
                           optimizer=args.optimizer)
    if not given:
        print(f"moving balls: seeds {', '.join(map(str, cfg.seeds))}")
    metrics = run_experiment(cfg, out, progress=not args.no_progress, command=command_line(),
                             machine=machine_line())
    print((out / "table.md").read_text())
    print(f"wrote {out / 'table.md'}, {out / 'metrics.json'}, {out / 'fig1.png'} "
          f"in {metrics['wall_s']:.0f} s")
    return 0


def cmd_verify_theory(args: argparse.Namespace) -> int:

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


def register(subparsers) -> None:
    esub = add_group(subparsers, "experiment", "experiment", "EXPERIMENT",
                     "paper reproductions")
    p = add_command(esub, "moving-balls", cmd_moving_balls,
                    "arXiv:2107.02495v3 Fig. 1: RBF vs bilinear critic")
    p.add_argument("--out", default="results/moving-balls")
    add_seed_args(p, "0,1,2,3,4 (--quick: 0,1)")
    p.add_argument("--quick", action="store_true",
                   help="64x64 frames, 160 frames, 4 epochs, 2 seeds: seconds, for tests")
    p.add_argument("--methods", default=None,
                   help="comma list of rbf, bilinear, ring, supervised, random (default: all "
                        "but ring, the paper's Fig. 1)")
    p.add_argument("--balls", choices=("coloured", "identical", "grey", "mixed"), default=None,
                   help="coloured (default: ball k in channel k), identical (one channel, all "
                        "white), grey (one channel, levels 0.4/0.7/1.0) or mixed (distinct "
                        "colours mixing channels)")
    p.add_argument("--epochs", type=int_arg(1, 1_000_000), default=None)
    p.add_argument("--frames", type=int_arg(1, 10_000_000), default=None)
    p.add_argument("--lr", type=float_arg(-math.inf), default=None)
    p.add_argument("--coordinates", choices=("raw", "centred", "unit"), default=None,
                   help="what the critics see of the encoder's pixel coordinates: raw (default, "
                        "the paper's literal reading), centred (minus the frame centre) or "
                        "unit (the frame mapped to [-1, 1])")
    p.add_argument("--length-scale", type=float_arg(-math.inf), default=None,
                   help="the RBF critic's initial length-scale (default 1)")
    p.add_argument("--negatives", choices=("batch", "bank", "hard"), default=None,
                   help="the critics' negatives: batch (the other pairs, default), bank (also a "
                        "memory bank of every training frame's recent encoding) or hard (also "
                        "frames t+2..t+5)")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default=None,
                   help="sgd (the paper's, default) or adam (e.g. for --balls grey)")
    p.add_argument("--checkpoint-every", type=int_arg(0, 1_000_000_000), default=None,
                   help="also checkpoint every N steps inside an epoch (default 0: at epoch "
                        "ends only); an interrupted run resumes exactly")
    add_device_arg(p)
    add_progress_arg(p)

    p = add_command(subparsers, "verify-theory", cmd_verify_theory,
                    "check every RPM identity numerically on closed-form problems")
    p.add_argument("--json", default=None, help="also write the rows as JSON")
    add_seed_arg(p)
    p.add_argument("--scale", type=float_arg(0.01, 100.0), default=1.0,
                   help="Monte-Carlo sample-size multiplier in [0.01, 100] (default 1)")
