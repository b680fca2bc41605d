from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpcfw.metadata import (
    Metadata,
    decode_grpc_message,
    decode_metadata,
    decode_timeout,
    encode_grpc_message,
    encode_metadata,
    encode_timeout,
)

keys = st.from_regex(r"[0-9a-z_.\-]{1,20}", fullmatch=True).filter(
    lambda k: (
        not k.startswith("grpc-")
        and k not in {"te", "content-type", "user-agent", "content-length", "host"}
    )
)
text_values = st.from_regex(r"[ -~]{0,40}", fullmatch=True)


@given(st.lists(st.tuples(keys, text_values | st.binary(max_size=40)), max_size=10))
def test_metadata_round_trips_text_and_binary_values(pairs: list[tuple[str, str | bytes]]) -> None:
    items: list[tuple[str, str | bytes]] = []
    for key, value in pairs:
        if isinstance(value, bytes):
            items.append((key.removesuffix("-bin") + "-bin", value))
        else:
            items.append((key if not key.endswith("-bin") else key + "x", value))
    assert list(decode_metadata(encode_metadata(items))) == items


@pytest.mark.parametrize(
    "key", ["grpc-status", "te", "content-type", ":path", "Upper", "sp ace", ""]
)
def test_reserved_or_malformed_metadata_key_is_rejected(key: str) -> None:
    with pytest.raises(ValueError, match="invalid metadata key"):
        encode_metadata([(key, "v")])


def test_non_ascii_text_metadata_value_is_rejected() -> None:
    with pytest.raises(ValueError, match="invalid metadata value"):
        encode_metadata({"k": "caf\u00e9"})


def test_bytes_value_on_text_key_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="-bin"):
        encode_metadata({"k": b"raw"})


def test_corrupt_binary_header_is_dropped_not_raised() -> None:
    assert list(decode_metadata([("k-bin", "!!!"), ("a", "b")])) == [("a", "b")]


def test_metadata_multimap_accessors() -> None:
    md = Metadata([("a", "1"), ("b", "2"), ("a", "3")])
    assert md.get("a") == "1"
    assert md.get_all("a") == ["1", "3"]
    assert md.get("zz", "d") == "d"
    assert md.to_dict() == {"a": "3", "b": "2"}
    assert md == Metadata([("a", "1"), ("b", "2"), ("a", "3")])
    assert len(md) == 3 and md[1] == ("b", "2")


@given(st.text())
def test_grpc_message_round_trips_any_unicode(message: str) -> None:
    encoded = encode_grpc_message(message)
    assert all(0x20 <= ord(c) <= 0x7E for c in encoded)
    assert decode_grpc_message(encoded) == message.encode("utf-8", "surrogatepass").decode(
        "utf-8", "replace"
    )


def test_grpc_message_keeps_spaces_and_encodes_non_bmp() -> None:
    assert encode_grpc_message("a b%") == "a b%25"
    assert decode_grpc_message(encode_grpc_message("\U0001f389 \u00fc")) == "\U0001f389 \u00fc"


@given(st.floats(min_value=0, max_value=10**9, allow_nan=False))
def test_encoded_timeout_never_undershoots_and_fits_eight_digits(seconds: float) -> None:
    encoded = encode_timeout(seconds)
    assert len(encoded) <= 9
    assert decode_timeout(encoded) >= seconds * (1 - 1e-12)


@pytest.mark.parametrize("value", ["", "1", "10x", "123456789S", "-1S", "1.5S"])
def test_malformed_grpc_timeout_is_rejected(value: str) -> None:
    with pytest.raises(ValueError, match="grpc-timeout"):
        decode_timeout(value)


def test_typed_getters_return_text_and_bytes_and_refuse_the_wrong_kind_of_key() -> None:
    md = Metadata([("x-team", "billing"), ("x-id-bin", b"\x00\x01")])
    assert md.get_text("x-team") == "billing"
    assert md.get_binary("x-id-bin") == b"\x00\x01"
    assert md.get_text("absent") is None and md.get_text("absent", "dflt") == "dflt"
    assert md.get_binary("absent-bin", b"d") == b"d"
    with pytest.raises(ValueError, match="binary key"):
        md.get_text("x-id-bin")
    with pytest.raises(ValueError, match="text key"):
        md.get_binary("x-team")
