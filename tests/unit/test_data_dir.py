"""Where the data folder is when CHUNKMATCH_DATA_DIR is not set: one per user, never /root."""

from __future__ import annotations

from pathlib import Path

from service.settings import ROOT_DATA_DIR, Settings, default_data_dir


def test_chunkmatch_data_dir_wins() -> None:
    env = {"CHUNKMATCH_DATA_DIR": "/srv/cm", "XDG_DATA_HOME": "/x", "HOME": "/home/u"}
    assert Settings.from_env(env).data_dir == Path("/srv/cm")


def test_a_user_gets_the_xdg_data_home_else_local_share() -> None:
    assert default_data_dir({"XDG_DATA_HOME": "/x", "HOME": "/home/u"}, is_root=False) == Path(
        "/x/chunkmatch"
    )
    assert default_data_dir({"HOME": "/home/u"}, is_root=False) == Path(
        "/home/u/.local/share/chunkmatch"
    )
    # a relative XDG_DATA_HOME is invalid by the spec: ignored
    assert default_data_dir({"XDG_DATA_HOME": "rel", "HOME": "/home/u"}, is_root=False) == Path(
        "/home/u/.local/share/chunkmatch"
    )


def test_root_gets_a_folder_outside_root() -> None:
    assert default_data_dir({"HOME": "/root"}, is_root=True) == ROOT_DATA_DIR
    assert default_data_dir({"XDG_DATA_HOME": "/root/.local/share"}, is_root=True) == ROOT_DATA_DIR
    assert default_data_dir({"XDG_DATA_HOME": "/srv/xdg"}, is_root=True) == Path(
        "/srv/xdg/chunkmatch"
    )
    assert not ROOT_DATA_DIR.is_relative_to("/root")
