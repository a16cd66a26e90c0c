"""Signed checkpoints: C2SP `tlog-checkpoint` bodies in C2SP `signed-note` envelopes, Ed25519.

A checkpoint commits to the whole log at one size:

    <origin>
    <tree size>
    <root hash, base64>

    — <key name> <base64(key hash[4] ‖ Ed25519 signature of the three lines above)>

The key hash is SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]; a verifier key is written
`<name>+<key hash, hex>+<base64(0x01 ‖ public key)>`, a signer key
`PRIVATE+KEY+<name>+<key hash, hex>+<base64(0x01 ‖ private seed)>` (the formats of Go's
`golang.org/x/mod/sumdb/note`, so standard tools read them).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = b"\x01"
DASH = "\u2014"


class NoteError(ValueError):
    """A note, key or checkpoint that is malformed or does not verify."""


def key_hash(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public).digest()[:4]


def _check_name(name: str) -> None:
    if not name or "+" in name or any(c.isspace() for c in name):
        raise NoteError(f"a key name has no '+' and no spaces: {name!r}")


@dataclass(frozen=True)
class Verifier:
    """A public key that checks signatures: the `/ledger/public-key` a client trusts."""

    name: str
    public: bytes

    @property
    def hash(self) -> bytes:
        return key_hash(self.name, self.public)

    def text(self) -> str:
        return f"{self.name}+{self.hash.hex()}+{base64.b64encode(ED25519 + self.public).decode()}"

    @classmethod
    def parse(cls, text: str) -> Verifier:
        try:
            name, hashed, encoded = text.strip().split("+", 2)
            raw = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise NoteError("a verifier key reads <name>+<hash>+<key>") from None
        _check_name(name)
        if len(raw) != 33 or raw[:1] != ED25519:
            raise NoteError("only Ed25519 verifier keys are known")
        verifier = cls(name, raw[1:])
        if verifier.hash.hex() != hashed:
            raise NoteError("the verifier key's hash does not match its name and key")
        return verifier

    def verify(self, text: str, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, text.encode())
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Signer:
    """A private key that signs checkpoints."""

    name: str
    seed: bytes

    @classmethod
    def generate(cls, name: str) -> Signer:
        _check_name(name)
        return cls(name, Ed25519PrivateKey.generate().private_bytes_raw())

    @property
    def verifier(self) -> Verifier:
        public = Ed25519PrivateKey.from_private_bytes(self.seed).public_key()
        return Verifier(self.name, public.public_bytes(Encoding.Raw, PublicFormat.Raw))

    def text(self) -> str:
        encoded = base64.b64encode(ED25519 + self.seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.hash.hex()}+{encoded}"

    @classmethod
    def parse(cls, text: str) -> Signer:
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("a signer key reads PRIVATE+KEY+<name>+<hash>+<key>")
        raw = base64.b64decode(parts[4])
        if len(raw) != 33 or raw[:1] != ED25519:
            raise NoteError("only Ed25519 signer keys are known")
        signer = cls(parts[2], raw[1:])
        if signer.verifier.hash.hex() != parts[3]:
            raise NoteError("the signer key's hash does not match its key")
        return signer

    def sign(self, text: str) -> str:
        """The signed note: the text, a blank line, and this key's signature line."""
        if not text.endswith("\n"):
            raise NoteError("a note's text ends with a newline")
        signature = Ed25519PrivateKey.from_private_bytes(self.seed).sign(text.encode())
        line = base64.b64encode(self.verifier.hash + signature).decode()
        return f"{text}\n{DASH} {self.name} {line}\n"


def open_note(note: str, verifiers: list[Verifier]) -> tuple[str, Verifier]:
    """The text of a signed note and the known key that signed it; NoteError if none of them did."""
    text, separator, signatures = note.rpartition("\n\n")
    if not separator:
        raise NoteError("a signed note has its text, a blank line, then signature lines")
    text += "\n"
    for line in signatures.splitlines():
        dash, _, rest = line.partition(" ")
        name, _, encoded = rest.partition(" ")
        if dash != DASH or not name or not encoded:
            raise NoteError(f"malformed signature line: {line!r}")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise NoteError(f"malformed signature line: {line!r}") from None
        for verifier in verifiers:
            if verifier.name == name and raw[:4] == verifier.hash and verifier.verify(text, raw[4:]):
                return text, verifier
    raise NoteError("no signature on the note verifies with a known key")


@dataclass(frozen=True)
class Checkpoint:
    """What a signed checkpoint commits to: the log's origin, its size, its root."""

    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("a checkpoint reads origin, tree size, root hash, one a line")
        origin, size, encoded = lines[:3]
        if not size.isdigit() or (size != "0" and size.startswith("0")):
            raise NoteError(f"the tree size is not a decimal number: {size!r}")
        try:
            root = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise NoteError("the root hash is not base64") from None
        if len(root) != 32:
            raise NoteError("the root hash is not 32 bytes")
        return cls(origin, int(size), root)

    @classmethod
    def verified(cls, note: str, verifiers: list[Verifier]) -> tuple[Checkpoint, Verifier]:
        """The checkpoint a signed note holds, once a known key's signature on it verifies."""
        text, verifier = open_note(note, verifiers)
        checkpoint = cls.parse(text)
        if checkpoint.origin != verifier.name:
            raise NoteError(f"the checkpoint's origin {checkpoint.origin!r} is not its signer's name")
        return checkpoint, verifier
