"""The embedded Temporal server's command line: the settings the launcher gives it reach its flags."""

from pathlib import Path

import pytest

from devstack.embedded import TemporalDevServer
from settings import Settings


def _flags(server: TemporalDevServer) -> list[str]:
    cmd = server.command()
    return [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--dynamic-config-value"]


def test_history_cache_is_sized_by_the_setting(tmp_path: Path) -> None:
    server = TemporalDevServer(tmp_path, port=17233, ui_port=18233, cache_size=750)
    assert _flags(server) == ["history.hostLevelCacheMaxSize=750"]


def test_default_cache_is_the_settings_default(tmp_path: Path) -> None:
    server = TemporalDevServer(tmp_path, port=17233, ui_port=18233)
    assert _flags(server) == [f"history.hostLevelCacheMaxSize={Settings().temporal_dev_cache_size}"]


def test_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_DEV_CACHE_SIZE", "1200")
    assert Settings().temporal_dev_cache_size == 1200
