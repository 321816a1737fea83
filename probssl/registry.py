"""Open registries: methods, critics, priors and datasets by name, extensible from outside.

A component registers itself where it is defined, with one decorator line::

    @register_critic("ring", config=RingCriticConfig)
    class RingCritic(Critic): ...

The package's own components are registered when their package is imported
(``probssl.methods``, ``probssl.critics``, ``probssl.priors``, ``probssl.data``). A
third-party package registers through the ``probssl.plugins`` entry point group: each entry
names a module, imported (once) the first time any registry is asked for a name, e.g. in its
``pyproject.toml``::

    [project.entry-points."probssl.plugins"]
    my_critics = "my_package.probssl_plugin"
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar

from probssl.errors import UserError, exception_line
from probssl.schema import build_dataclass, check_types

T = TypeVar("T")
_REQUIRED = object()
PLUGIN_GROUP = "probssl.plugins"
_plugins_loaded = False


def load_plugins() -> None:
    """Import every module of the ``probssl.plugins`` entry point group, once. A plugin that
    fails to import is one user error naming it (a broken third-party package must not look
    like a probssl bug)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        try:
            ep.load()
        except Exception as exc:  # noqa: BLE001 - any failure of foreign code
            _plugins_loaded = False
            raise UserError(f"probssl plugin {ep.name!r} ({ep.value}) failed to load: "
                            f"{exception_line(exc, with_type=True)}") from None


class Registry(Generic[T]):
    """Name -> entry, in registration order; a mapping to read, :meth:`register` to add.

    Unknown names are one :class:`UserError` listing the choices; registering a name twice is
    refused unless ``replace=True`` (a plugin may not silently shadow a built-in)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T, *, replace: bool = False) -> T:
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise ValueError(f"a {self.kind} name must be a non-empty word; got {name!r}")
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def get(self, name: str, default: Any = _REQUIRED) -> T:
        """The entry called ``name``; unknown names are a UserError listing the choices,
        unless a ``default`` is given (as ``dict.get(name, None)``)."""
        if name not in self._entries:
            load_plugins()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            if default is not _REQUIRED:
                return default
            raise UserError(f"unknown {self.kind} {name!r}; choose from "
                            f"{', '.join(self.names())}") from None

    def names(self) -> list[str]:
        load_plugins()
        return list(self._entries)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        if name not in self._entries:
            load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def keys(self) -> list[str]:
        return self.names()

    def values(self) -> list[T]:
        load_plugins()
        return list(self._entries.values())

    def items(self) -> list[tuple[str, T]]:
        load_plugins()
        return list(self._entries.items())


def decorator(registry: Registry, make: Callable[..., T]) -> Callable[..., Callable]:
    """``@register_x(name, **spec)`` for a registry whose entries ``make(name, obj, **spec)``
    builds from the decorated class or function (returned unchanged)."""

    def register(name: str, *, replace: bool = False, **spec):
        def wrap(obj):
            registry.register(name, make(name, obj, **spec), replace=replace)
            return obj
        return wrap
    return register


@dataclass
class ComponentConfig:
    """Base of a component's settings (a critic's, a prior's): typed fields, checked when
    built (:func:`probssl.schema.check_types`), then :meth:`validate`. A component without
    settings uses this class itself."""

    def __post_init__(self) -> None:
        check_types(self, type(self).__name__)
        self.validate()

    def validate(self) -> None:
        """Component-specific checks; raise UserError naming the bad field."""


@dataclass(frozen=True)
class Component:
    """A registered critic or prior: ``cls(dim, **settings)`` with settings from
    ``config_cls`` (whose field names are the constructor's keyword arguments)."""

    kind: str
    name: str
    cls: type
    config_cls: type[ComponentConfig]
    description: str

    def config(self, settings: dict[str, Any] | None = None) -> ComponentConfig:
        """The validated settings; a misspelt key is one UserError naming it."""
        return build_dataclass(self.config_cls, dict(settings or {}),
                               f"{self.kind} '{self.name}' settings")

    def build(self, dim: int, settings: dict[str, Any] | None = None):
        cfg = self.config(settings)
        return self.cls(dim, **{f.name: getattr(cfg, f.name) for f in fields(cfg)})


def component_decorator(registry: Registry[Component]) -> Callable[..., Callable]:
    """``@register_x(name, config=XConfig, description=...)`` for critics and priors; the
    description defaults to the first line of the class's (or its module's) docstring."""

    def make(name: str, cls: type, *, config: type[ComponentConfig] = ComponentConfig,
             description: str = "") -> Component:
        doc = cls.__doc__ or getattr(sys.modules.get(cls.__module__), "__doc__", "") or ""
        first = doc.strip().splitlines()[0] if doc.strip() else ""
        return Component(registry.kind, name, cls, config, description or first)
    return decorator(registry, make)
