import json, os, sys
from base64 import b64decode as b64
from hashlib import sha256
from urllib.request import Request, urlopen

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

# Checks a Duty Ledger server with no code of its (DUTYLEDGER_TOKEN: an integrator's API key, for the leaf):
# python verify_recipe.py URL KEY INDEX OLD_SIZE OLD_ROOT
url, key, index, old_size, old_root = *sys.argv[1:3], int(sys.argv[3]), int(sys.argv[4]), b64(sys.argv[5])


def check(ok: object, what: str) -> None:
    ok or sys.exit(f"FAILED: {what}")


def climb(fn: int, sn: int, proof: list[str], old: bytes, new: bytes) -> tuple[bytes, bytes, int]:
    for h in map(b64, proof):  # RFC 9162 2.1.3.2 and 2.1.4.2: the roots a proof leads to (old tree, new)
        check(sn > 0, "the proof is too long")
        if fn & 1 or fn == sn:
            old, new = sha256(b"\1" + h + old).digest(), sha256(b"\1" + h + new).digest()
            while fn & 1 == 0 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            new = sha256(b"\1" + new + h).digest()
        fn, sn = fn >> 1, sn >> 1
    return old, new, sn  # sn is 0 unless the proof is too short


# 1. The checkpoint "<origin>\n<size>\n<root>\n", signed by KEY = <name>+<key hash, hex>+<base64(1 ‖ key)>.
name, key_hash, public = key.split("+", 2)
check(sha256(name.encode() + b"\n" + b64(public)).digest()[:4].hex() == key_hash, "the key's hash")
text, _, signatures = urlopen(url + "/ledger/checkpoint").read().decode().rpartition("\n\n")
sigs = [b64(line.split(" ")[-1]) for line in signatures.splitlines()]  # "— <name> <base64(hash ‖ sig)>"
signed = [s[4:] for s in sigs if s[:4].hex() == key_hash]
check(signed and text.startswith(name + "\n"), "a checkpoint of KEY's log signed by KEY")
Ed25519PublicKey.from_public_bytes(b64(public)[1:]).verify(signed[0], (text + "\n").encode())  # or raises
size, root = int(text.split("\n")[1]), b64(text.split("\n")[2])
auth = {"Authorization": "Bearer " + os.environ["DUTYLEDGER_TOKEN"]}  # 2. One event: its leaf is the event
proof = json.load(urlopen(Request(f"{url}/ledger/proofs/inclusion?index={index}&tree_size={size}", None, auth)))
check(int.from_bytes((leaf := b64(proof["leaf"]))[19:27], "big") == index, "the leaf is of event INDEX")
got = climb(index, size - 1, proof["proof"], b"", sha256(b"\0" + leaf).digest())  # leaf: docs/verify.md
check(got[1:] == (root, 0), "the inclusion proof")
proof = json.load(urlopen(f"{url}/ledger/proofs/consistency?from={old_size}&to={size}"))  # 3. The old log
path = [sys.argv[5]] * (old_size == 1 << (t := (old_size & -old_size).bit_length() - 1)) + proof["proof"]
fn, sn = (old_size - 1) >> t, (size - 1) >> t  # t: the low 1-bits of old_size - 1, skipped (RFC 9162 2.1.4.2)
walk = climb(fn, sn, path[1:], b64(path[0]), b64(path[0])) if old_size < size else (old_root, old_root, 0)
check(old_size <= size and walk == (old_root, root, 0), "consistency: the log was rolled back or rewritten")
print(f"event {index} is in the log of {size}, which is consistent with the log of {old_size}")
