"""``probssl export``: a run's encoder as a plain state_dict and pure-PyTorch source."""

from __future__ import annotations

import argparse

from probssl.cli.common import add_command, add_data_dir_arg
from probssl.errors import UserError
from probssl.export import export_encoder
from probssl.runs.format import load_run
from probssl.userio import check_output_file


def cmd_export(args: argparse.Namespace) -> int:
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
    print(f"Rebuild: net = build_encoder(); "
          f"net.load_state_dict(torch.load('{pt.name}', weights_only=True)); "
          f"z = net(x)[:, :{enc.latent_dim}]")
    return 0


def register(subparsers) -> None:
    p = add_command(subparsers, "export", cmd_export,
                    "export the encoder as a plain state_dict + code")
    p.add_argument("run", help="run directory")
    add_data_dir_arg(p)
    p.add_argument("--out", required=True, help="weights file (.pt); the source goes beside it")
