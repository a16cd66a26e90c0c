"""The leaf of a stored event in the Merkle log: a canonical byte encoding anyone can recompute.

    leaf = "dutyledger-leaf-v1" 0x0A
           u64(log index)
           16 bytes: the aggregate id (UUID, big-endian as written)
           u64(aggregate version)
           u32(len topic)        topic (UTF-8), e.g. "dutyledger:Case.Accepted"
           u32(len record time)  record time (ASCII, exactly as the payload's "timestamp")
           u32(len payload)      the stored payload bytes, exactly as stored

Integers are unsigned big-endian. Every variable part is length-prefixed, so no two events
encode alike; the prefix names the encoding's version. The leaf hash is SHA-256(0x00 ‖ leaf)
(RFC 6962). docs/verify.md gives the same recipe for third parties.
"""

from __future__ import annotations

import struct
from uuid import UUID

import orjson

PREFIX = b"dutyledger-leaf-v1\n"
_FIXED = struct.Struct(">Q16sQI")
"""Log index, aggregate id, version, and the length of the topic that follows them."""
_LENGTH = struct.Struct(">I")


def leaf_bytes(
    index: int, aggregate_id: str, version: int, topic: str, recorded_at: str, payload: bytes
) -> bytes:
    """The canonical leaf of the event at `index` (every event of a rebuild or a verify passes here)."""
    name, at = topic.encode(), recorded_at.encode()
    fixed = _FIXED.pack(index, uuid_bytes(aggregate_id), version, len(name))
    return b"".join((PREFIX, fixed, name, _LENGTH.pack(len(at)), at, _LENGTH.pack(len(payload)), payload))


def uuid_bytes(text: str) -> bytes:
    """`UUID(text).bytes`, without building a UUID for the canonical dashed spelling."""
    if len(text) == 36 and text.count("-") == 4:
        try:
            packed = bytes.fromhex(text.replace("-", ""))
        except ValueError:  # not hex digits: UUID() decides, as it always did
            packed = b""
        if len(packed) == 16:  # fromhex skips whitespace, which UUID() reads differently
            return packed
    return UUID(text).bytes


def recorded_at_of(payload: bytes) -> str:
    """The record time a stored payload carries (its `timestamp`), as it spells it."""
    value = orjson.loads(payload)["timestamp"]
    assert isinstance(value, str)
    return value
