"""Descriptors as .proto-like text, for ``rpcfw describe``."""

from __future__ import annotations

from google.protobuf import descriptor

from .schema import AnyDescriptor

__all__ = ["describe"]

_F = descriptor.FieldDescriptor
_SCALARS = {
    _F.TYPE_DOUBLE: "double", _F.TYPE_FLOAT: "float", _F.TYPE_INT64: "int64",
    _F.TYPE_UINT64: "uint64", _F.TYPE_INT32: "int32", _F.TYPE_FIXED64: "fixed64",
    _F.TYPE_FIXED32: "fixed32", _F.TYPE_BOOL: "bool", _F.TYPE_STRING: "string",
    _F.TYPE_BYTES: "bytes", _F.TYPE_UINT32: "uint32", _F.TYPE_SFIXED32: "sfixed32",
    _F.TYPE_SFIXED64: "sfixed64", _F.TYPE_SINT32: "sint32", _F.TYPE_SINT64: "sint64",
}  # fmt: skip


def _type(field: descriptor.FieldDescriptor) -> str:
    if field.message_type is not None:
        entry = field.message_type
        if entry.GetOptions().map_entry:
            key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
            return f"map<{_type(key)}, {_type(value)}>"
        return f".{entry.full_name}"
    if field.enum_type is not None:
        return f".{field.enum_type.full_name}"
    return _SCALARS.get(field.type, str(field.type))


def _field(field: descriptor.FieldDescriptor) -> str:
    label = ""
    is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
    if field.is_repeated and not is_map:
        label = "repeated "
    elif field.has_presence and field.containing_oneof is None and field.message_type is None:
        label = "optional "
    return f"{label}{_type(field)} {field.name} = {field.number};"


def _rpc(method: descriptor.MethodDescriptor) -> str:
    request = ("stream " if method.client_streaming else "") + f".{method.input_type.full_name}"
    reply = ("stream " if method.server_streaming else "") + f".{method.output_type.full_name}"
    return f"rpc {method.name} ( {request} ) returns ( {reply} );"


def _enum(enum: descriptor.EnumDescriptor, indent: str) -> list[str]:
    lines = [f"{indent}enum {enum.name} {{"]
    lines += [f"{indent}  {value.name} = {value.number};" for value in enum.values]
    return [*lines, f"{indent}}}"]


def _message(message: descriptor.Descriptor, indent: str) -> list[str]:
    lines = [f"{indent}message {message.name} {{"]
    inner = indent + "  "
    oneofs_done: set[str] = set()
    for field in message.fields:
        oneof = field.containing_oneof
        if oneof is not None and not oneof.name.startswith("_"):  # a real oneof
            if oneof.name not in oneofs_done:
                oneofs_done.add(oneof.name)
                lines.append(f"{inner}oneof {oneof.name} {{")
                lines += [f"{inner}  {_field(f)}" for f in oneof.fields]
                lines.append(f"{inner}}}")
            continue
        lines.append(f"{inner}{_field(field)}")
    for nested in message.nested_types:
        if not nested.GetOptions().map_entry:
            lines += _message(nested, inner)
    for enum in message.enum_types:
        lines += _enum(enum, inner)
    return [*lines, f"{indent}}}"]


def describe(symbol: AnyDescriptor) -> str:
    """``<full name> is a <kind>:`` and its definition."""
    if isinstance(symbol, descriptor.ServiceDescriptor):
        body = [f"service {symbol.name} {{", *(f"  {_rpc(m)}" for m in symbol.methods), "}"]
        kind = "a service"
    elif isinstance(symbol, descriptor.MethodDescriptor):
        body, kind = [_rpc(symbol)], "a method"
    elif isinstance(symbol, descriptor.Descriptor):
        body, kind = _message(symbol, ""), "a message"
    elif isinstance(symbol, descriptor.EnumDescriptor):
        body, kind = _enum(symbol, ""), "an enum"
    else:
        body, kind = [_field(symbol)], "a field"
    return "\n".join([f"{symbol.full_name} is {kind}:", *body])
