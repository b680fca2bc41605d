"""Small text builders shared by the renderer: docstrings, wrapped calls, import lines.

Output follows ``ruff format``'s style (line length 88) so generated code is stable under it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["LINE_LENGTH", "docstring", "from_import", "isort_key", "split_subscript", "wrap"]

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
        return [f"{indent}{head}{left}", inner, *split_subscript(f"{indent}{right}{tail}")]
    wrapped = [line for a in args for line in _split_union(f"{indent}    {a},")]
    return [f"{indent}{head}{left}", *wrapped, *split_subscript(f"{indent}{right}{tail}")]


def split_subscript(line: str) -> list[str]:
    """A line too long for one line with a subscript (``) -> Call[A, B]: ...``): the
    subscript's contents on their own line, as ruff format splits it."""
    if len(line) <= LINE_LENGTH or "[" not in line:
        return [line]
    indent = line[: len(line) - len(line.lstrip())]
    start = line.index("[")
    depth = 0
    for end in range(start, len(line)):
        depth += {"[": 1, "]": -1}.get(line[end], 0)
        if depth == 0:
            break
    else:
        return [line]
    inner = line[start + 1 : end]
    return [line[: start + 1], f"{indent}    {inner}", f"{indent}{line[end:]}"]


def _split_union(line: str) -> list[str]:
    """An argument line too long for one line, whose annotation is a union: one alternative
    per line, as ruff format writes it (``name: A`` / ``| B`` / ``| C = default,``)."""
    if len(line) <= LINE_LENGTH:
        return [line]
    indent = line[: len(line) - len(line.lstrip())]
    parts, depth, start = [], 0, 0
    for i, char in enumerate(line):
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        elif depth == 0 and line.startswith(" | ", i):
            parts.append(line[start:i])
            start = i + 3
    if not parts:
        return [line]
    parts.append(line[start:])
    return [parts[0], *(f"{indent}| {part}" for part in parts[1:])]


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
