"""API tokens: random, shown once, stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

TOKEN_PREFIX = "cm_"
TOKEN_BYTES = 32  # 256 bits of randomness
SHOWN_PREFIX_LENGTH = len(TOKEN_PREFIX) + 6


@dataclass(frozen=True)
class Principal:
    """Who is calling: an owner, or an admin who sees and acts on everything."""

    owner: str
    is_admin: bool = False

    @property
    def scope(self) -> str | None:
        """The owner to filter by, or ``None`` (everything) for an admin."""
        return None if self.is_admin else self.owner


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    # tokens carry 256 random bits: a fast hash is enough, no salt or stretching needed
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def shown_prefix(token: str) -> str:
    return token[:SHOWN_PREFIX_LENGTH]
