"""Personal data at rest: encrypted with AES-GCM, looked up through keyed hashes.

Identity numbers, card numbers, phone numbers and document files are stored only encrypted
(``DataProtector.seal``), under a key derived from ``P2P_DATA_KEY``. Equality lookups ("is this
phone registered?", "does another account use this ID?") use an HMAC of the normalised value
under a second derived key, so the database never holds a value that can be reversed or brute
forced without the key. Screens and logs show only masked values (``core.domain.identity``).
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = b"\x01"
NONCE_BYTES = 12


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(master)


class DataProtector:
    def __init__(self, data_key: bytes) -> None:
        if len(data_key) != 32:
            raise ValueError("the data key must be 32 bytes")
        self._aead = AESGCM(_derive(data_key, b"p2p-desk/encryption/v1"))
        self._lookup_key = _derive(data_key, b"p2p-desk/lookup/v1")

    def seal(self, plaintext: str | bytes, *, context: str) -> bytes:
        """Encrypt; ``context`` (e.g. ``"phone"``) is authenticated, so a ciphertext moved to
        another column does not decrypt."""
        data = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
        nonce = os.urandom(NONCE_BYTES)
        return VERSION + nonce + self._aead.encrypt(nonce, data, context.encode())

    def open(self, sealed: bytes, *, context: str) -> bytes:
        if sealed[:1] != VERSION:
            raise ValueError("unknown ciphertext version")
        nonce, body = sealed[1:1 + NONCE_BYTES], sealed[1 + NONCE_BYTES:]
        return self._aead.decrypt(nonce, body, context.encode())

    def open_text(self, sealed: bytes, *, context: str) -> str:
        return self.open(sealed, context=context).decode("utf-8")

    def lookup_hash(self, value: str, *, kind: str) -> str:
        """A keyed hash for equality lookups of normalised values of one ``kind``."""
        message = f"{kind}\x00{value}".encode()
        return hmac.new(self._lookup_key, message, hashlib.sha256).hexdigest()
