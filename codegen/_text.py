"""Small text builders shared by the renderer: docstrings, wrapped calls, import lines.

Output follows ``ruff format``'s style (line length 88) so generated code is stable under it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["LINE_LENGTH", "docstring", "from_import", "isort_key", "wrap"]

LINE_LENGTH = 88


def docstring(text: str, indent: str) -> list[str]:
    if not text:
        return []
    text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    if text.endswith('"'):
        text = text[:-1] + '\\"'
    lines = text.split("\n")
    if len(lines) == 1:
        return [f'{indent}"""{lines[0]}"""']
    body = [f"{indent}{line}" if line else "" for line in lines[1:]]
    return [f'{indent}"""{lines[0]}', *body, f'{indent}"""']


def wrap(head: str, args: Sequence[str], tail: str, indent: str, brackets: str = "()") -> list[str]:
    """``head(args)tail`` on one line if it fits, else wrapped the way ruff format does."""
    left, right = brackets[0], brackets[1]
    one = f"{indent}{head}{left}{', '.join(args)}{right}{tail}"
    if len(one) <= LINE_LENGTH:
        return [one]
    inner = f"{indent}    {', '.join(args)}"
    if len(inner) <= LINE_LENGTH and left == "(":
        return [f"{indent}{head}{left}", inner, f"{indent}{right}{tail}"]
    wrapped = (f"{indent}    {a}," for a in args)
    return [f"{indent}{head}{left}", *wrapped, f"{indent}{right}{tail}"]


def from_import(source: str, names: Iterable[str]) -> list[str]:
    """``from source import ...`` lines the way ruff's isort writes them: plain names in
    one statement, each ``X as Y`` in its own; statements ordered by their first name."""
    items = sorted(set(names), key=isort_key)
    plain = [item for item in items if " as " not in item]
    statements = [[item] for item in items if " as " in item] + ([plain] if plain else [])
    lines: list[str] = []
    for members in sorted(statements, key=lambda m: isort_key(m[0])):
        one = f"from {source} import {', '.join(members)}"
        if len(one) <= LINE_LENGTH:
            lines.append(one)
        else:
            lines += [f"from {source} import (", *(f"    {m}," for m in members), ")"]
    return lines


def isort_key(item: str, case_sensitive: bool = False) -> tuple[int, str, str]:
    """Order by kind (CONSTANTS, Classes, others) then name: import members compare names
    case-insensitively (ruff's isort default), ``__all__`` entries as-is (RUF022)."""
    name = item.split(" ")[0]
    kind = 0 if name.isupper() and len(name) > 1 else (1 if name[:1].isupper() else 2)
    return kind, name if case_sensitive else name.lower(), name
