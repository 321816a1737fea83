"""Every public function and class of probssl has a docstring (the API reference is built
from them), and every objective and loss names the equation it implements or shows a usage
example."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import probssl


def _skipped(name: str) -> bool:
    """The CLI (documented by ``--help``) and ``__main__`` (importing it runs the CLI)."""
    return name == "probssl.__main__" or name == "probssl.cli" or name.startswith("probssl.cli.")


@pytest.fixture(scope="module")
def modules() -> list[ModuleType]:
    # walk_packages imports packages only (to find their submodules), never probssl.__main__
    names = [m.name for m in pkgutil.walk_packages(probssl.__path__, "probssl.")]
    return [probssl] + [importlib.import_module(n) for n in names if not _skipped(n)]


def _public(module: ModuleType):
    """(name, object) of the public functions and classes defined in ``module`` itself."""
    for name, obj in vars(module).items():
        if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if getattr(obj, "__module__", None) == module.__name__:
            yield name, obj


def _doc(obj) -> str:
    """The object's own docstring (``inspect.getdoc`` would inherit a base class's)."""
    return obj.__doc__ or ""


def test_every_public_function_and_class_has_a_docstring(modules):
    missing = [f"{m.__name__}.{name}" for m in modules for name, obj in _public(m)
               if not _doc(obj).strip()]
    assert not missing, f"{len(missing)} without a docstring:\n" + "\n".join(missing)


def test_objectives_and_losses_cite_an_equation_or_show_an_example(modules):
    checked, missing = 0, []
    for m in modules:
        if m.__name__.startswith("probssl.objectives."):
            wanted = [(n, o) for n, o in _public(m) if inspect.isfunction(o)]
        elif m.__name__ == "probssl.losses":
            wanted = [(n, o) for n, o in _public(m) if inspect.isclass(o)]
        else:
            continue
        for name, obj in wanted:
            checked += 1
            if "Eq." not in _doc(obj) and ">>>" not in _doc(obj):
                missing.append(f"{m.__name__}.{name}")
    assert checked >= 30, f"only {checked} objectives and losses found: is the walk broken?"
    assert not missing, ("no 'Eq.' reference and no '>>>' example in:\n" + "\n".join(missing))
