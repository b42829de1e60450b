"""Zero-configuration local use: a local admin token, made once, kept in the data directory."""

from __future__ import annotations

import os

from service.settings import Settings
from service.store import Store

LOCAL_OWNER = "local"


async def ensure_local_token(store: Store, settings: Settings) -> None:
    """On the embedded default with no tokens at all, create a local admin token, print it
    once and save it (mode 0600) where the page's user and `chunkmatch run` can find it."""
    if await store.count_tokens():
        return
    if not settings.embedded:
        print(
            "chunkmatch: no API tokens exist yet; create one with "
            "`chunkmatch token create --owner NAME [--admin]`",
            flush=True,
        )
        return
    token, _ = await store.create_token(LOCAL_OWNER, is_admin=True)
    path = settings.local_token_file
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    os.chmod(path, 0o600)
    print(
        f"chunkmatch: created a local admin token (saved to {path}, readable only by you); "
        f"paste it into the page when asked:\n{token}",
        flush=True,
    )


def read_local_token(settings: Settings) -> str | None:
    try:
        return settings.local_token_file.read_text().strip() or None
    except OSError:
        return None
