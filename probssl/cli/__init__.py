"""The ``probssl`` command.

Every user mistake (argument, config, file, missing data) ends with one line on stderr and
exit status 2; a diverged training exits with 3; a bug prints one line naming a crash log with
its traceback and exits with 1 (``probssl --debug ...`` prints the traceback instead).

One module per command group, each with ``register(subparsers)``, assembled in
:data:`COMMANDS` order; the shared parser, argument types and argument groups are in
:mod:`probssl.cli.common`.

Imports: every import sits at the top of its module except those of modules that pull in
scikit-learn or matplotlib (:mod:`probssl.evaluate`, :mod:`probssl.experiments` compare,
moving_balls, bench, report and figures, :mod:`probssl.demo`): together ~1 s and ~1,000
modules that ``--help`` and the commands not using them would otherwise pay for. They are
imported inside the ``cmd_*`` functions that need them, each marked ``# lazy``. torch itself
is imported by :mod:`probssl.config` (TrainConfig, from which the train flags are built), so
it is not lazy.
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback

from probssl import __version__
from probssl.cli import bench, datasets, demo, evaluate, experiment, export, figure, methods, train
from probssl.cli.common import Parser
from probssl.errors import ProbsslError
from probssl.train.distributed import exit_process, joined_process_group

# the order of the subcommands in ``probssl --help``
COMMANDS = (train, evaluate, export, datasets, methods, bench, experiment, figure, demo)


def build_parser() -> Parser:
    parser = Parser(prog="probssl", description=__doc__.splitlines()[0],
                    epilog="probssl --debug COMMAND ... prints the traceback of an internal "
                           "error (also PROBSSL_DEBUG=1)")
    parser.add_argument("--version", action="version", version=f"probssl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``probssl`` command; returns its exit status.

    0 success; 2 bad input (one line naming what is wrong); 3 training diverged; 4 a
    checkpoint could not be written; 130 interrupted; 1 an internal error (a bug): one line
    saying where the full traceback was written (``--debug`` prints it instead). Every
    expected failure is a :class:`~probssl.errors.ProbsslError` carrying its exit status.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv[:1] or bool(os.environ.get("PROBSSL_DEBUG"))
    if argv[:1] == ["--debug"]:
        argv = argv[1:]
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except ProbsslError as exc:  # expected: one line and the class's exit status
        print(f"probssl: {exc.label}: {_one_line(exc)}", file=sys.stderr)
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
    if joined_process_group():
        exit_process(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
