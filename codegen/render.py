"""Text of one ``<file>_rpcfw.py`` module: stubs, server bases and method specs of the file's
services, and every message and enum of the file (and the messages its methods use) re-exported
under one name for both backends (nested ones flat, as betterproto2 names them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ._text import LINE_LENGTH, docstring, from_import, isort_key, split_subscript, wrap
from .descriptors import proto_files_code
from .model import Cardinality, Method, ProtoFile, Service
from .naming import (
    Backend,
    MessageImport,
    escape,
    flat_class_name,
    message_import,
    rpcfw_module,
    snake_case,
    upper_snake,
)

__all__ = ["render_file", "render_types_module"]

_OPTS = "**options: typing.Unpack[rpcfw.CallOptions]"
# Names the generated module binds at top level: method and message names must not shadow them.
_MODULE_NAMES = frozenset(
    {"abc", "warnings", "rpcfw", "typing", "Mapping", "annotations"}
    | {"AsyncIterable", "AsyncIterator", "Iterable", "options", "request", "requests", "self"}
    | {"context", "channel"}
)


@dataclass
class _Names:
    """Names bound at module level, and message class -> the name used for it."""

    used: set[str] = field(default_factory=lambda: set(_MODULE_NAMES))
    messages: dict[str, str] = field(default_factory=dict)
    imports: dict[str, MessageImport] = field(default_factory=dict)

    def claim(self, wanted: str) -> str:
        name = wanted
        while name in self.used:
            name += "_"
        self.used.add(name)
        return name


def _plan_names(
    proto: ProtoFile, backend: Backend, reserved: frozenset[str] = _MODULE_NAMES
) -> tuple[_Names, dict[str, str]]:
    names = _Names(set(reserved))
    if any(m.cardinality is Cardinality.STREAM_UNARY for s in proto.services for m in s.methods):
        names.used.add("Coroutine")  # imported for the client-streaming stubs
    module = rpcfw_module(proto.name)
    classes: dict[str, str] = {}
    for service in proto.services:
        for suffix in ("Stub", "Base"):
            classes[service.name + suffix] = names.claim(service.name + suffix)
    for service in proto.services:
        for method in service.methods:
            key = f"{service.name}.{method.name}"
            classes[key] = names.claim(f"{upper_snake(service.name)}_{upper_snake(method.name)}")
    defined = {ref.full_name for ref in proto.types}
    refs = [*proto.types, *(r for r in proto.message_refs() if r.full_name not in defined)]
    # Types of the file's own package get first pick of the plain names.
    refs.sort(key=lambda ref: ref.package != proto.package)
    for ref in refs:
        flat = flat_class_name(ref.local_name)
        wanted = flat if flat not in names.used else f"{ref.package.replace('.', '_')}_{flat}"
        names.messages[ref.full_name] = names.claim(wanted.lstrip("_") or "Message")
        names.imports[ref.full_name] = message_import(ref, module, backend)
    return names, classes


def _import_lines(names: _Names, extra: tuple[str, str] | None = None) -> list[str]:
    groups: dict[str, set[str]] = {}
    if extra is not None:  # (source, member)
        groups[extra[0]] = {extra[1]}
    plain: dict[tuple[str, str], str] = {}  # (source, top) -> local name
    for full_name, imp in names.imports.items():
        if not imp.attr:
            plain[imp.source, imp.top] = names.messages[full_name]
    nested: list[str] = []
    for full_name, imp in names.imports.items():
        local = names.messages[full_name]
        if imp.attr:  # protobuf nested class: reach it through its top-level class
            top = plain.get((imp.source, imp.top))
            if top is None:
                top = plain[imp.source, imp.top] = names.claim(f"_{imp.top}")
            nested.append(f"{local} = {top}.{imp.attr}")
    for (source, top), local in plain.items():
        groups.setdefault(source, set()).add(top if top == local else f"{top} as {local}")
    absolute = sorted(src for src in groups if not src.startswith("."))
    # isort order: absolute before relative; deeper relative (more dots) first.
    relative = sorted(
        (src for src in groups if src.startswith(".")),
        key=lambda s: (-(len(s) - len(s.lstrip("."))), s.lstrip(".")),
    )
    lines: list[str] = []
    for src in absolute:  # same isort section as `import rpcfw`
        lines += from_import(src, groups[src])
    if relative:
        lines.append("")
    for src in relative:
        lines += from_import(src, groups[src])
    if nested:
        lines += ["", *sorted(nested)]
    return lines


def _method_names(service: Service, names: _Names) -> dict[str, str]:
    taken = set(names.used) | {"__rpcfw_methods__", "__rpcfw_service__", "_channel"}
    result: dict[str, str] = {}
    for method in service.methods:
        name = escape(snake_case(method.name), taken)
        while name in taken:
            name += "_"
        taken.add(name)
        result[method.name] = name
    return result


@dataclass
class _Ctx:
    names: _Names
    classes: dict[str, str]
    files: str  # the module constant holding the rpcfw.ProtoFiles
    uses: set[str] = field(default_factory=set)


def _stub_method(service: Service, method: Method, py: str, ctx: _Ctx) -> list[str]:
    req = ctx.names.messages[method.input.full_name]
    resp = ctx.names.messages[method.output.full_name]
    spec = ctx.classes[f"{service.name}.{method.name}"]
    card = method.cardinality
    reqs = f"Iterable[{req}] | AsyncIterable[{req}]"
    ind = "    "
    doc = docstring(method.comment, ind * 2)
    warn: list[str] = []
    if method.deprecated or service.deprecated:
        ctx.uses.add("warnings")
        what = f"{service.full_name}.{method.name}" if method.deprecated else service.full_name
        args = [f'"{what} is deprecated"', "DeprecationWarning", "stacklevel=2"]
        warn = wrap("warnings.warn", args, "", ind * 2)
    if card.client_streaming:
        ctx.uses.update({"Iterable", "AsyncIterable"})
    if card.server_streaming:
        ctx.uses.add("AsyncIterator")
    lines: list[str] = []
    if card is Cardinality.STREAM_STREAM:
        bidi = f"rpcfw.BidiStream[{req}, {resp}]"
        lines += [f"{ind}@typing.overload"]
        lines += wrap(
            f"def {py}", ["self", "requests: None = None", "/", _OPTS], f" -> {bidi}: ...", ind
        )
        lines += ["", f"{ind}@typing.overload"]
        lines += wrap(
            f"def {py}",
            ["self", f"requests: {reqs}", "/", _OPTS],
            f" -> AsyncIterator[{resp}]: ...",
            ind,
        )
        lines += [""]
        lines += _union_return(
            wrap(f"def {py}", ["self", f"requests: {reqs} | None = None", "/", _OPTS], "", ind),
            [bidi, f"AsyncIterator[{resp}]"],
            ind,
        )
        lines += doc + warn + [f"{ind * 2}if requests is None:"]
        lines += wrap("return self._channel.stream_stream", [spec, "**options"], "", ind * 3)
        lines += wrap(
            "return self._channel.stream_stream_iter", [spec, "requests", "**options"], "", ind * 2
        )
        return lines
    if card is Cardinality.STREAM_UNARY:
        ctx.uses.add("Coroutine")
        call_object = f"rpcfw.ClientStreamCall[{req}, {resp}]"
        reply = f"Coroutine[typing.Any, typing.Any, {resp}]"
        lines += [f"{ind}@typing.overload"]
        lines += wrap(
            f"def {py}",
            ["self", "requests: None = None", "/", _OPTS],
            f" -> {call_object}: ...",
            ind,
        )
        lines += ["", f"{ind}@typing.overload"]
        lines += wrap(
            f"def {py}", ["self", f"requests: {reqs}", "/", _OPTS], f" -> {reply}: ...", ind
        )
        lines += [""]
        lines += _union_return(
            wrap(f"def {py}", ["self", f"requests: {reqs} | None = None", "/", _OPTS], "", ind),
            [call_object, reply],
            ind,
        )
        lines += doc + warn + [f"{ind * 2}if requests is None:"]
        lines += wrap("return self._channel.client_stream_call", [spec, "**options"], "", ind * 3)
        lines += wrap(
            "return self._channel.stream_unary", [spec, "requests", "**options"], "", ind * 2
        )
        return lines
    if card is Cardinality.UNARY_UNARY:
        head, arg, ret, call = (
            f"async def {py}",
            f"request: {req}",
            resp,
            "await self._channel.unary_unary",
        )
    elif card is Cardinality.UNARY_STREAM:
        head, arg, ret, call = (
            f"def {py}",
            f"request: {req}",
            f"AsyncIterator[{resp}]",
            "self._channel.unary_stream",
        )
    else:
        raise AssertionError(card)
    lines += wrap(head, ["self", arg, "/", _OPTS], f" -> {ret}:", ind)
    lines += doc + warn
    lines += wrap(f"return {call}", [spec, arg.split(":")[0], "**options"], "", ind * 2)
    return lines


def _union_return(signature: list[str], alternatives: list[str], ind: str) -> list[str]:
    """``signature`` (ending ``)``) with ``-> A | B:``, parenthesized as ruff format does
    when it does not fit on the closing line."""
    union = " | ".join(alternatives)
    last = f"{signature[-1]} -> {union}:"
    if len(last) <= LINE_LENGTH:
        return [*signature[:-1], last]
    head = [*signature[:-1], f"{signature[-1]} -> ("]
    if len(f"{ind * 2}{union}") <= LINE_LENGTH:
        return [*head, f"{ind * 2}{union}", f"{ind}):"]
    parts = [f"{ind * 2}{alternatives[0]}", *(f"{ind * 2}| {a}" for a in alternatives[1:])]
    return [*head, *(line for part in parts for line in split_subscript(part)), f"{ind}):"]


def _base_method(method: Method, py: str, ctx: _Ctx) -> list[str]:
    req = ctx.names.messages[method.input.full_name]
    resp = ctx.names.messages[method.output.full_name]
    card = method.cardinality
    ind = "    "
    arg = f"requests: AsyncIterator[{req}]" if card.client_streaming else f"request: {req}"
    if card.server_streaming:
        head, ret = f"def {py}", f"AsyncIterator[{resp}]"
    else:
        head, ret = f"async def {py}", resp
    if card is not Cardinality.UNARY_UNARY:
        ctx.uses.add("AsyncIterator")
    doc = docstring(method.comment, ind * 2)
    tail = f" -> {ret}:" if doc else f" -> {ret}: ..."
    lines = [f"{ind}@abc.abstractmethod"]
    return lines + wrap(head, ["self", arg, "context: rpcfw.CallContext"], tail, ind) + doc


def _service(service: Service, ctx: _Ctx) -> list[str]:
    ind = "    "
    py = _method_names(service, ctx.names)
    stub, base = ctx.classes[service.name + "Stub"], ctx.classes[service.name + "Base"]
    doc = docstring(service.comment, ind)
    out = [f"class {stub}:", *doc, *([""] if doc else [])]
    out += [f'{ind}__slots__ = ("_channel",)', ""]
    out += [
        f"{ind}def __init__(self, channel: rpcfw.Channel) -> None:",
        f"{ind * 2}self._channel = channel",
    ]
    for method in service.methods:
        out += ["", *_stub_method(service, method, py[method.name], ctx)]
    out += ["", "", f"class {base}(rpcfw.ServiceBase):", *doc, *([""] if doc else [])]
    out += [f'{ind}__rpcfw_service__: typing.ClassVar[str] = "{service.full_name}"']
    out += [f"{ind}__rpcfw_files__ = {ctx.files}"]
    for method in service.methods:
        out += ["", *_base_method(method, py[method.name], ctx)]
    out += ["", f"{ind}def __rpcfw_methods__("]
    out += [
        f"{ind * 2}self,",
        f"{ind}) -> Mapping[str, rpcfw.ServerMethod[typing.Any, typing.Any]]:",
    ]
    out += [f"{ind * 2}return {{"]
    for method in service.methods:
        spec = ctx.classes[f"{service.name}.{method.name}"]
        args = [spec, f"self.{py[method.name]}"]
        key = f"{ind * 3}{spec}.path: "
        if len(f"{key}rpcfw.ServerMethod(") <= LINE_LENGTH:
            out += wrap(f"{spec}.path: rpcfw.ServerMethod", args, ",", ind * 3)
        else:  # the value in parentheses: ruff format cannot split the key
            out += [f"{key}(", *wrap("rpcfw.ServerMethod", args, "", ind * 4), f"{ind * 3}),"]
    out += [f"{ind * 2}}}"]
    return out


def _spec(service: Service, method: Method, ctx: _Ctx) -> list[str]:
    req = ctx.names.messages[method.input.full_name]
    resp = ctx.names.messages[method.output.full_name]
    name = ctx.classes[f"{service.name}.{method.name}"]
    args = [f'"{service.path(method)}"', f"rpcfw.Cardinality.{method.cardinality.name}", req, resp]
    if method.idempotent:
        args.append("idempotent=True")
    target = f"{name}: rpcfw.MethodSpec[{req}, {resp}] = "
    if len(f"{target}rpcfw.MethodSpec(") <= LINE_LENGTH:
        return wrap(f"{target}rpcfw.MethodSpec", args, "", "")
    # as ruff format does: the value in parentheses if that fits, else the subscript split
    if len(f"{target}(") <= LINE_LENGTH:
        return [f"{target}(", *wrap("rpcfw.MethodSpec", args, "", "    "), ")"]
    subscript = [f"{name}: rpcfw.MethodSpec[", f"    {req}, {resp}"]
    return [*subscript, *wrap("] = rpcfw.MethodSpec", args, "", "")]


def _header_imports(uses: set[str]) -> list[str]:
    lines = ["import abc", "import typing"]
    if "warnings" in uses:
        lines.append("import warnings")
    abc_names = [
        "Mapping",
        *sorted(uses & {"AsyncIterable", "AsyncIterator", "Coroutine", "Iterable"}),
    ]
    lines += from_import("collections.abc", abc_names)
    return lines


def render_file(proto: ProtoFile, backend: Backend, descriptors: Sequence[bytes] = ()) -> str:
    """The service module for ``proto`` (which must have at least one service).

    ``descriptors``: ``proto``'s serialized descriptor then its imports' (the betterproto2
    backend embeds them, see :mod:`.descriptors`)."""
    names, classes = _plan_names(proto, backend)
    files = proto_files_code(proto.name, backend, descriptors, names.claim)
    ctx = _Ctx(names, classes, files.name)
    body: list[str] = []
    for service in proto.services:
        body += ["", "", *_service(service, ctx)]
    specs: list[str] = []
    for service in proto.services:
        for method in service.methods:
            specs += _spec(service, method, ctx)
    exported = sorted(
        [*classes.values(), *names.messages.values()], key=lambda n: isort_key(n, True)
    )
    all_lines = wrap("__all__ = ", [f'"{n}"' for n in exported], "", "", "[]")
    lines = [
        "# Generated by protoc-gen-rpcfw. DO NOT EDIT!",
        f"# source: {proto.name}",
        f'"""rpcfw services of {_docstring_safe(proto.name)}."""',
        "",
        # annotations stay unevaluated: importing the module needs only what its module-level
        # code uses (MethodSpec, ServiceBase, ...), so rpcfw itself can import its own
        # generated services (health, reflection) while it initialises
        "from __future__ import annotations",
        "",
        *_header_imports(ctx.uses),
        "",
        "import rpcfw",
        *_import_lines(names, files.imports),
        "",
        *all_lines,
        "",
        *specs,
        "",
        *files.lines,
        *body,
    ]
    return "\n".join(lines) + "\n"


def render_types_module(proto: ProtoFile, backend: Backend) -> str:
    """The module of a file without services: its messages and enums, re-exported."""
    names, _ = _plan_names(proto, backend, frozenset())  # binds nothing but the types
    exported = sorted(names.messages.values(), key=lambda n: isort_key(n, True))
    imports = _import_lines(names)
    lines = [
        "# Generated by protoc-gen-rpcfw. DO NOT EDIT!",
        f"# source: {proto.name}",
        f'"""Messages and enums of {_docstring_safe(proto.name)}."""',
        "",
        *(imports[1:] if imports[:1] == [""] else imports),
        "",
        *wrap("__all__ = ", [f'"{n}"' for n in exported], "", "", "[]"),
    ]
    return "\n".join(lines) + "\n"


def _docstring_safe(text: str) -> str:
    return text.replace("\\", "/").replace('"', "'")
