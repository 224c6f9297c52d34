"""What every record format shares: the one msgpack encoder, the error a decoder raises, and
the type tag that names a command or event in its envelope."""

from typing import Any, Final, TypeVar, get_args

import msgspec

__all__ = ["ENCODER", "CodecError", "decoded", "type_tag", "union_members"]

T = TypeVar("T")

ENCODER: Final = msgspec.msgpack.Encoder()


class CodecError(ValueError):
    """Bytes that do not decode to what was expected."""


def decoded(decoder: msgspec.msgpack.Decoder[T], data: bytes, what: str) -> T:
    """``decoder.decode(data)``; bytes it cannot read raise CodecError("not {what}: ...")."""
    try:
        return decoder.decode(data)
    except msgspec.DecodeError as error:
        raise CodecError(f"not {what}: {error}") from None


def union_members(union: Any) -> tuple[type[Any], ...]:
    """The classes of a union type (or the one class given)."""
    return get_args(union) or (union,)


def type_tag(cls: type[Any]) -> str:
    """The name a command or event class goes by on the wire: its msgspec tag."""
    config = getattr(cls, "__struct_config__", None)
    if config is None or not isinstance(config.tag, str):
        raise TypeError(f"{cls.__name__} must be a msgspec Struct tagged with its type name")
    return config.tag
