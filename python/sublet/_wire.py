"""The wire format: protocols/sublet.capnp, the same schema the C++ codec is
generated from (this package ships it; one file in the repository). An
Envelope is one Cap'n Proto message, unpacked, in one ZeroMQ frame."""

import math
import os
import re

import capnp  # pycapnp

PROTOCOL_VERSION = 2  # protocols/messages.h kProtocolVersion
EXIT_PREEMPTED = 75   # common/exit_codes.h: checkpointed for preemption

# A frame from a peer is read with these bounds (protocols/codec.h).
_TRAVERSAL_LIMIT_WORDS = 4 << 20
_NESTING_LIMIT = 16
MAX_FRAME_BYTES = 16 << 20

_schema = None


def schema():
    """The loaded schema module (Envelope, Progress, ...)."""
    global _schema
    if _schema is None:
        here = os.path.dirname(os.path.abspath(__file__))
        path = os.path.join(here, "sublet.capnp")
        # c++.capnp, imported by the schema, ships with pycapnp.
        include = os.path.dirname(os.path.dirname(os.path.abspath(capnp.__file__)))
        _schema = capnp.load(path, imports=[include])
    return _schema


def envelope(token, request_id=0):
    return schema().Envelope.new_message(version=PROTOCOL_VERSION, requestId=request_id,
                                         token=token)


class WireError(Exception):
    """A frame that is not a Sublet envelope of this protocol version."""


def decode(frame):
    """Parses `frame` into a (reader of an) Envelope; WireError when it is
    too large, not Cap'n Proto, or another protocol version."""
    if len(frame) > MAX_FRAME_BYTES:
        raise WireError(f"frame of {len(frame)} bytes is over {MAX_FRAME_BYTES}")
    if len(frame) % 8 != 0:
        raise WireError("malformed frame: not a whole number of words")
    try:
        message = schema().Envelope.from_bytes(
            frame, traversal_limit_in_words=_TRAVERSAL_LIMIT_WORDS,
            nesting_limit=_NESTING_LIMIT)
        # pycapnp 2 returns a context manager; the reader is what it enters.
        reader = message.__enter__() if hasattr(message, "__enter__") else message
        version = reader.version
        which = reader.body.which()
    except Exception as e:  # pycapnp raises KjException and friends
        raise WireError(f"malformed frame: {e}") from None
    if version != PROTOCOL_VERSION:
        raise WireError(f"peer speaks protocol version {version}; this SDK speaks "
                        f"{PROTOCOL_VERSION}")
    return reader, which


_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def snake(name):
    return _CAMEL.sub(r"_\1", name).lower()


def to_python(value):
    """A Cap'n Proto reader as plain Python: structs become dicts with
    snake_case keys, lists lists, enums their names, NaN None."""
    if isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, bytes):
        return value
    if hasattr(value, "to_dict"):
        return _dict(value.to_dict())
    if hasattr(value, "__iter__"):
        return [to_python(v) for v in value]
    return str(value)


def _dict(d):
    if isinstance(d, dict):
        return {snake(k): _dict(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_dict(v) for v in d]
    if isinstance(d, float) and math.isnan(d):
        return None
    return d
