"""What every ``probssl`` command shares: the parser (one-line errors), typed argument
types checked where a value enters, and the argument groups declared once (device, data
folder, seeds, progress, evaluation protocol, ``--set``)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from probssl.errors import UserError
from probssl.methods import get_method_spec
from probssl.schema import field_names, parse_assignments
from probssl.train.trainer import check_device, resolve_device
from probssl.userio import MAX_INT


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line and exit status 2 (a :class:`UserError`),
    and no abbreviations (``--epoch`` must not silently mean ``--epochs``)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{self.prog}: {message}")


def add_command(subparsers, name: str, func: Callable[[argparse.Namespace], int],
                help: str) -> argparse.ArgumentParser:
    """A subcommand ``name`` that runs ``func(args)``."""
    p = subparsers.add_parser(name, help=help, description=help)
    p.set_defaults(func=func)
    return p


def add_group(subparsers, name: str, dest: str, metavar: str, help: str):
    """A command with sub-commands of its own (``figure``, ``experiment``)."""
    p = subparsers.add_parser(name, help=help, description=help)
    sub = p.add_subparsers(dest=dest, metavar=metavar, parser_class=Parser)
    sub.required = True
    return sub


# -- argument types: a bad value is refused where it enters ----------------------------------

def int_arg(lo: int = 0, hi: int = MAX_INT) -> Callable[[str], int]:
    """argparse type: an integer within [lo, hi]."""

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


def float_arg(lo: float = 0.0, hi: float = math.inf, lo_open: bool = False
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


def device_arg(text: str) -> str:
    """argparse type: auto, cpu, cuda or cuda:N, and CUDA must exist when asked for."""
    try:
        return check_device(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


device_arg.__name__ = "device"


def comma_list(text: str | None) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]`` (None -> [])."""
    return [t.strip() for t in (text or "").split(",") if t.strip()]


# -- shared argument groups ------------------------------------------------------------------

def add_device_arg(p: argparse.ArgumentParser) -> None:
    """``--device``, default ``auto`` (CUDA when available) on every command; resolve it with
    :func:`device_of` before any work."""
    p.add_argument("--device", type=device_arg, default="auto",
                   help="auto (CUDA if available), cpu, cuda or cuda:N (default auto)")


def device_of(args: argparse.Namespace):
    """The torch device ``--device`` names (``auto`` resolved on this machine)."""
    return resolve_device(args.device)


def add_data_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None,
                   help="folder holding the dataset's files (default: the cache)")


def add_progress_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_seed_arg(p: argparse.ArgumentParser, help: str = "random seed (default 0)") -> None:
    """``--seed N``: the one seed of a single computation."""
    p.add_argument("--seed", type=int_arg(), default=0, help=help)


def add_seed_args(p: argparse.ArgumentParser, default: str) -> None:
    """One meaning everywhere: ``--seeds`` is a list (``--seeds 3`` is seed 3), ``--n-seeds N``
    a count (seeds 0..N-1); read them with :func:`seeds_of`."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--seeds", default=None, metavar="LIST",
                   help=f"comma-separated seeds, e.g. 0,3,7 (3 alone is seed 3; default "
                        f"{default})")
    g.add_argument("--n-seeds", type=int_arg(1, 1000), default=None, metavar="N",
                   help="run seeds 0..N-1")
    p.set_defaults(seeds_default=default)


def seeds_given(args: argparse.Namespace) -> bool:
    return args.seeds is not None or getattr(args, "n_seeds", None) is not None


def _int_list(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UserError(f"--seeds expects comma-separated integers; got {text[:60]!r}"
                        ) from None


def seeds_of(args: argparse.Namespace, what: str) -> tuple[int, ...]:
    """The seeds a command will run (validated), announced on stdout before any work."""
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


def add_set_arg(p: argparse.ArgumentParser, help: str) -> None:
    """``--set KEY=VALUE`` (repeatable), collected in ``args.assignments``."""
    p.add_argument("--set", dest="assignments", action="append", default=[],
                   metavar="KEY=VALUE", help=help)


def method_params_for(methods: list[str], assignments: list[str]) -> dict[str, dict]:
    """Give each ``KEY=VALUE`` to every method whose config has KEY (at least one must)."""
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


def add_eval_args(p: argparse.ArgumentParser) -> None:
    """The evaluation protocol's settings (``evaluate``, ``compare``, ``bench``)."""
    p.add_argument("--k-max", type=int_arg(1, 1000), default=15,
                   help="kNN k = 1..K (default 15)")
    p.add_argument("--knn-metric", default="euclidean", help="euclidean or cosine")
    p.add_argument("--probe-epochs", type=int_arg(1, 100_000), default=200)
    p.add_argument("--no-mlp-probe", action="store_true", help="skip the MLP probe")
    p.add_argument("--gmm-n-init", type=int_arg(0, 10_000), default=20,
                   help="GMM restarts (paper 200, authors' code 20); 0 skips the GMM")
    p.add_argument("--fid-features", default="classifier",
                   help="classifier (offline, not comparable to Inception FID), "
                        "inception:PATH (TorchScript Inception-v3) or none")
    p.add_argument("--fid-samples", type=int_arg(2, 1_000_000), default=5000)
    p.add_argument("--eval-seed", type=int_arg(), default=0)


def eval_config(args: argparse.Namespace) -> Any:
    """The :class:`~probssl.evaluate.EvalConfig` of :func:`add_eval_args`' flags."""
    from probssl.evaluate import EvalConfig  # lazy: scikit-learn, ~0.8 s

    return EvalConfig(k_max=args.k_max, knn_metric=args.knn_metric,
                      probe_epochs=args.probe_epochs, seed=args.eval_seed,
                      mlp_probe=not args.no_mlp_probe, gmm_n_init=args.gmm_n_init,
                      fid_features=args.fid_features, fid_samples=args.fid_samples)


def add_input_convention_args(p) -> None:
    """How images reach an encoder from outside probssl (``evaluate --encoder``, ``bench
    --encoder``): :class:`probssl.evaluate.external.InputConvention`."""
    p.add_argument("--input-range", default="0-1", choices=["0-1", "-1-1"],
                   help="the encoder's input range (default 0-1; write --input-range=-1-1)")
    p.add_argument("--resize", type=int_arg(1, 4096), default=None, metavar="N",
                   help="resize images to N x N (default: the dataset's size)")
    p.add_argument("--binarize", default="dataset", metavar="T|none|dataset",
                   help="binarise at threshold T; default: the dataset's own (MNIST: 0.5)")
    p.add_argument("--normalize", default=None, metavar="MEAN,STD",
                   help="per-channel normalisation after the range, e.g. 0.5,0.5 or "
                        "0.49:0.48:0.45,0.25:0.24:0.26")


def input_convention(args: argparse.Namespace) -> Any:
    """The :class:`~probssl.evaluate.external.InputConvention` of those flags."""
    from probssl.evaluate.external import InputConvention, parse_normalize  # lazy: sklearn

    text = args.binarize
    if text in ("dataset", "none"):
        binarize = None if text == "none" else text
    else:
        try:
            binarize = float(text)
        except ValueError:
            raise UserError(f"--binarize {text!r}: a threshold, 'none' or 'dataset'") from None
    return InputConvention(range=args.input_range, resize=args.resize, binarize=binarize,
                           normalize=parse_normalize(args.normalize))


def train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig settings ``compare`` and ``bench`` give every cell: ``--device`` and
    whichever of ``--lr``, ``--batch-size``, ``--data-dir``, ``--eval-every``,
    ``--augmentation`` were given."""
    overrides: dict[str, Any] = {"device": args.device}
    for key in ("lr", "batch_size", "data_dir", "eval_every", "augmentation"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    return overrides
