"""``probssl datasets list|download``."""

from __future__ import annotations

import argparse

from probssl.cli.common import add_command
from probssl.data import DATASETS, download_dataset, get_preset
from probssl.errors import UserError


def cmd_datasets(args: argparse.Namespace) -> int:
    if args.action == "list":
        print(f"{'name':<15}{'shape':<12}{'classes':<9}{'augment (flip)':<28}{'arch/z':<11}"
              "how to get")
        for info in DATASETS.values():
            shape = "x".join(map(str, info.image_shape))
            aug = f"{info.augmentation} ({get_preset(info.augmentation).flips()})"
            print(f"{info.name:<15}{shape:<12}{info.num_classes!s:<9}{aug:<28}"
                  f"{info.architecture + '/' + str(info.latent_dim):<11}{info.how_to_get}")
        print("--preset paper flips vertically on the paper's datasets (SimVAE Table 2's "
              "\"Vertical Flip\" column and the authors' code)")
        print("folder:PATH    an image folder (one sub-folder per class, or unlabelled)")
        print("npz:FILE       arrays x (N,H,W[,C] or N,C,H,W) and optional y, x_test, y_test")
        return 0
    if not args.name:
        raise UserError("datasets download needs a dataset NAME")
    path = download_dataset(args.name, args.cache_dir)
    print(f"{args.name} is ready in {path}")
    return 0


def register(subparsers) -> None:
    p = add_command(subparsers, "datasets", cmd_datasets, "list or download datasets")
    p.add_argument("action", choices=["list", "download"])
    p.add_argument("name", nargs="?")
    p.add_argument("--cache-dir", default=None, help="default $PROBSSL_DATA or ~/.cache/probssl")
