"""``probssl export``: a run's encoder as a state_dict or safetensors file with pure-PyTorch
source, or as a ``torch.export`` program."""

from __future__ import annotations

import argparse

from probssl.cli.common import add_command, add_data_dir_arg
from probssl.errors import UserError
from probssl.export import FORMATS, SUFFIX, export_encoder
from probssl.runs.format import load_run
from probssl.userio import check_output_file


def cmd_export(args: argparse.Namespace) -> int:
    out = check_output_file(args.out)
    if args.format != "torch-export":
        if out.suffix == ".py":
            raise UserError(f"--out {out}: the weights and the generated encoder source "
                            f"({out.name}) would share one name; use e.g. --out "
                            f"{out.with_suffix(SUFFIX[args.format])}")
        check_output_file(out.with_suffix(".py"), "--out (its .py source)")
    loaded = load_run(args.run, data_dir=args.data_dir)
    path, src = export_encoder(loaded, args.out, args.format)
    n = loaded.method.encoder.latent_dim
    if src is None:
        print(f"wrote {path} (torch.export program of the encoder).")
        print(f"Use: net = torch.export.load('{path.name}').module(); z = net(x)[:, :{n}]")
        return 0
    print(f"wrote {path} ({args.format} of the encoder) and {src} (pure-PyTorch "
          "build_encoder()).")
    load = (f"load_file('{path.name}')  # from safetensors.torch import load_file"
            if args.format == "safetensors" else
            f"torch.load('{path.name}', weights_only=True)")
    print(f"Rebuild: net = build_encoder(); net.load_state_dict({load}); "
          f"z = net(x)[:, :{n}]")
    return 0


def register(subparsers) -> None:
    p = add_command(subparsers, "export", cmd_export,
                    "export the encoder as a plain state_dict + code")
    p.add_argument("run", help="run directory")
    add_data_dir_arg(p)
    p.add_argument("--out", required=True,
                   help="output file (.pt, .safetensors or .pt2); the weight formats write "
                        "their .py source beside it")
    p.add_argument("--format", choices=FORMATS, default="state_dict",
                   help="state_dict (torch.save of the weights, default), safetensors (needs "
                        "probssl[safetensors]) or torch-export (a self-contained program)")
