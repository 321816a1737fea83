"""``probssl methods``: the registered methods and their parameters."""

from __future__ import annotations

import argparse

from probssl.cli.common import add_command
from probssl.methods import METHODS
from probssl.schema import field_names


def cmd_methods(args: argparse.Namespace) -> int:
    for spec in METHODS.values():
        params = ", ".join(field_names(spec.config_cls))
        print(f"{spec.name:<10} {spec.description}\n{'':<10} params: {params}")
    return 0


def register(subparsers) -> None:
    add_command(subparsers, "methods", cmd_methods, "list methods and their parameters")
