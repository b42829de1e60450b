"""Zero-configuration local use: a local admin token, made once, kept in the data directory."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from service.settings import Settings
from service.store import Store

LOCAL_OWNER = "local"
# the lines above and below the token in `chunkmatch serve`'s output
ANNOUNCEMENT_RULE = "-" * 72

logger = logging.getLogger("chunkmatch")


@dataclass(frozen=True)
class NewLocalToken:
    """A local admin token created at this start, to be shown once by whoever started us."""

    token: str
    path: Path


async def ensure_local_token(store: Store, settings: Settings) -> NewLocalToken | None:
    """On the embedded default with no tokens at all, create a local admin token and save it
    (mode 0600) where the page's user and `chunkmatch run` can find it; return it so the
    caller shows it once, after everything else it prints at start-up."""
    if await store.count_tokens():
        return None
    if not settings.embedded:
        logger.warning(
            "no API tokens exist yet; create one with "
            "`chunkmatch token create --owner NAME [--admin]`"
        )
        return None
    token, _ = await store.create_token(LOCAL_OWNER, is_admin=True)
    path = settings.local_token_file.expanduser().absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    os.chmod(path, 0o600)
    return NewLocalToken(token, path)


def token_announcement(new: NewLocalToken) -> str:
    """The block ``chunkmatch serve`` prints last: the token, set apart, and where it is."""
    rule = ANNOUNCEMENT_RULE
    return "\n".join(
        [
            "",
            rule,
            "  Local admin token (shown only now):",
            "",
            f"    {new.token}",
            "",
            f"  Saved to {new.path} (readable only by you).",
            "  The page asks for it once and keeps it in the browser; `chunkmatch run`",
            "  reads it from that file by itself (CHUNKMATCH_DATA_DIR says where).",
            rule,
            "",
        ]
    )


def read_local_token(settings: Settings) -> str | None:
    try:
        return settings.local_token_file.read_text().strip() or None
    except OSError:
        return None
