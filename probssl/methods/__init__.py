"""Methods by name. Adding one = one new file (a :class:`Method` subclass decorated with
``@register_method``) + one import line below; a third-party package registers through the
``probssl.plugins`` entry point instead (see :mod:`probssl.registry`)."""

from __future__ import annotations

# registration happens on import: one line per built-in method
from probssl.methods import cr_vae, moco, random_init, rpm, simclr, simvae, vae, vicreg
from probssl.methods.base import (
    METHODS,
    Method,
    MethodConfig,
    MethodSpec,
    build_method,
    get_method_spec,
    is_trainable,
    make_method_config,
    register_method,
)

__all__ = ["METHODS", "Method", "MethodConfig", "MethodSpec", "build_method", "cr_vae",
           "get_method_spec", "is_trainable", "make_method_config", "moco", "random_init",
           "register_method", "rpm", "simclr", "simvae", "vae", "vicreg"]
