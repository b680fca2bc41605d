"""Plain help labels: this typer renders every parameter's Python type (``--help <bool>``,
``<list[Path]>``, ``{TARGET}``); ``tidy`` gives each option a click-style metavar (none for
flags) and each argument its bare name, across a whole command tree."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from typer.core import TyperArgument, TyperOption

__all__ = ["tidy"]

_LABELS = {
    "str": "TEXT",
    "int": "INTEGER",
    "int range": "INTEGER",
    "float": "FLOAT",
    "float range": "FLOAT",
    "Path": "PATH",
    "bool": "BOOLEAN",
}


class _Argument(TyperArgument):
    """An argument shown by its name only: ``TARGET``, ``[SERVICE]``, ``PROTO...``."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        if self.nargs != 1:
            name += "..."
        return name if self.required else f"[{name}]"


def _commands(command: Any) -> Iterator[Any]:
    yield command
    subcommands = getattr(command, "commands", None)  # a group's
    if isinstance(subcommands, Mapping):
        for sub in subcommands.values():
            yield from _commands(sub)


def _label(type_text: str) -> str:
    """``<int range>`` -> INTEGER, ``<list[Path]>`` -> PATH, ``<a|b>`` -> [a|b]."""
    text = type_text.strip("<>")
    if text.startswith("list[") and text.endswith("]"):
        text = text[5:-1]
    if "|" in text:
        return f"[{text}]"
    return _LABELS.get(text, text.upper())


def tidy(root: Any) -> Any:
    """Fix the labels of ``root`` and every command below it (in place); returns ``root``."""
    for command in _commands(root):
        context = command.context_class(command, info_name=command.name)
        params = list(command.params)
        help_option = command.get_help_option(context)
        if help_option is not None:
            params.append(help_option)
        for param in params:
            if isinstance(param, TyperArgument):
                param.__class__ = _Argument
                if param.metavar is None and param.name:
                    param.metavar = param.name.upper()
            elif isinstance(param, TyperOption) and param.metavar is None:
                if param.is_flag or param.count:
                    param.metavar = ""
                else:
                    param.metavar = _label(param.display_type(context))
    return root
