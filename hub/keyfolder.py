"""Sunbird's token keys as its portal and OPA hold them: a folder of PEM public keys, one a file, each file
named by the `kid` its tokens carry (`accessv1_key1`, `accessv1_key2`, ...). Sunbird rotates by adding a
file: the folder is read at start and again on SIGHUP, so a new key needs no restart.

Hidden entries are skipped, as the portal's `loadTokenPublicKeys` does (Kubernetes mounts a secret with
`..data` links beside the files). A file holding only the key's base64 body, as some deployments keep
them, is read as if it had its PEM armour.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

log = logging.getLogger(__name__)


class KeyFolderError(Exception):
    """The folder or one of its files cannot be used; the message says which and why."""


def read_key_folder(path: str) -> dict[str, Any]:
    """Every key of the folder by its `kid` (the file's name)."""
    folder = Path(path)
    try:
        entries = sorted(entry for entry in folder.iterdir() if not entry.name.startswith(".") and entry.is_file())
    except OSError as exc:
        raise KeyFolderError(f"cannot be read: {path} ({exc.strerror})") from None
    keys = {}
    for entry in entries:
        try:
            text = entry.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyFolderError(f"{entry.name} cannot be read ({exc})") from None
        if "-----BEGIN" not in text:
            text = f"-----BEGIN PUBLIC KEY-----\n{text}\n-----END PUBLIC KEY-----"
        try:
            keys[entry.name] = serialization.load_pem_public_key(text.encode())
        except ValueError:
            raise KeyFolderError(f"{entry.name} is not a PEM public key") from None
    if not keys:
        raise KeyFolderError(f"holds no key file: {path}")
    return keys


class KeyFolder:
    def __init__(self, path: str) -> None:
        self._path = path
        self.keys = read_key_folder(path)

    def reload(self) -> None:
        """A folder that went bad keeps the keys last read: refusing every user would be worse."""
        try:
            self.keys = read_key_folder(self._path)
        except KeyFolderError as exc:
            log.warning("JWT_KEYS_DIR kept its previous keys: %s", exc)
            return
        log.info("JWT_KEYS_DIR read again: %d keys (%s)", len(self.keys), ", ".join(self.keys))
