"""API keys of the HTTP service: only a SHA-256 of each key is stored."""

from __future__ import annotations

import hashlib
import secrets

from judge.records import ApiKeyRecord, from_row
from judge.store.db import Database, now


class KeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, name: str, *, admin: bool = False) -> str:
        """A new random key; only its hash is stored, so it is shown to the caller once. An
        admin key may also manage keys through the running service."""
        key_id = "jc_" + secrets.token_hex(4)
        key = f"{key_id}.{secrets.token_urlsafe(32)}"
        digest = hashlib.sha256(key.encode()).hexdigest()
        self.db.con.execute(
            "INSERT INTO api_keys (key_id, key_hash, name, created_at, revoked, admin) "
            "VALUES (?, ?, ?, ?, false, ?)",
            [key_id, digest, name, now(), admin],
        )
        return key

    def admins(self) -> set[str]:
        """Ids of the active admin keys."""
        return {k.key_id for k in self.all() if k.admin and not k.revoked}

    def active_hashes(self) -> dict[str, str]:
        """key id → hash of every key not revoked."""
        return {k.key_id: k.key_hash for k in self.all() if not k.revoked}

    def all(self) -> list[ApiKeyRecord]:
        names, rows = self.db.query("SELECT * FROM api_keys ORDER BY created_at")
        return [from_row(ApiKeyRecord, names, r) for r in rows]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key; False when no such key exists."""
        found = self.db.con.execute(
            "UPDATE api_keys SET revoked = true WHERE key_id = ? RETURNING key_id", [key_id]
        ).fetchall()
        return bool(found)
