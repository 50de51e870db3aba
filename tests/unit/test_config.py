"""The proxy's settings: read from the variables the stack sets, typed, and refused with the variable's
name when a value would not work."""

from __future__ import annotations

from pathlib import Path

import pytest
from nexus import env
from nexus.config import DEFAULT_UPSTREAM, MAX_BODY_BYTES, Settings, SettingsError


def test_defaults_without_any_variable() -> None:
    s = Settings.from_env({})
    assert s == Settings()
    assert s.upstream_url == DEFAULT_UPSTREAM and s.max_body_bytes == MAX_BODY_BYTES
    assert s.require_keys is True and s.strip_platform_headers is False
    assert s.spool_dir == Path(env.DEFAULT_DATA_DIR) / "spool"


def test_every_variable_sets_its_field_with_its_type(tmp_path: Path) -> None:
    s = Settings.from_env(
        {
            env.UPSTREAM_URL: "http://127.0.0.1:9000/",
            env.DATA_DIR: str(tmp_path),
            env.REQUIRE_KEYS: "false",
            env.MAX_BODY_BYTES: "1024",
            env.SPOOL_FSYNC: "1",
            env.RECORD_HOLD_BYTES: "2048",
            env.ACCESS_REFRESH_S: "30",
            env.HEADER_TIMEOUT_S: "2.5",
            env.BODY_TIMEOUT_S: "3",
            env.STRIP_PLATFORM_HEADERS: "TRUE",
        }
    )
    assert s == Settings(
        upstream_url="http://127.0.0.1:9000",
        data_dir=tmp_path,
        require_keys=False,
        max_body_bytes=1024,
        spool_fsync=True,
        record_hold_bytes=2048,
        access_refresh_s=30.0,
        header_timeout_s=2.5,
        body_timeout_s=3.0,
        strip_platform_headers=True,
    )
    assert s.secrets_path == tmp_path / "secrets.json"


def test_an_empty_variable_keeps_the_default_and_overrides_win() -> None:
    s = Settings.from_env(
        {env.MAX_BODY_BYTES: "", env.REQUIRE_KEYS: "true"}, require_keys=False, data_dir=None
    )
    assert s.max_body_bytes == MAX_BODY_BYTES and s.require_keys is False
    assert s.data_dir == Path(env.DEFAULT_DATA_DIR)


@pytest.mark.parametrize(
    ("var", "value", "why"),
    [
        (env.UPSTREAM_URL, "api.anthropic.com", "must start with http:// or https://"),
        (env.REQUIRE_KEYS, "maybe", "must be true or false"),
        (env.MAX_BODY_BYTES, "1.5", "must be a whole number"),
        (env.MAX_BODY_BYTES, "0", "must be a number greater than 0"),
        (env.BODY_TIMEOUT_S, "-1", "must be a number greater than 0"),
        (env.BODY_TIMEOUT_S, "nan", "must be a number greater than 0"),
        (env.HEADER_TIMEOUT_S, "soon", "must be a number"),
    ],
)
def test_a_bad_value_is_refused_naming_its_variable(var: str, value: str, why: str) -> None:
    with pytest.raises(SettingsError, match=f"^{var}: {why}"):
        Settings.from_env({var: value})


def test_bad_values_given_in_code_name_the_field() -> None:
    with pytest.raises(SettingsError, match=r"^upstream_url: "):
        Settings(upstream_url="ftp://x")
    with pytest.raises(SettingsError, match=r"^require_keys: "):
        Settings(require_keys="yes")  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match=r"^max_body_bytes: "):
        Settings(max_body_bytes=True)
