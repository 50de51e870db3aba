"""Each process reads its settings from the environment through one typed model: the variables'
names are the constants of ``nexus.env``, unset and empty are the same, and a bad value is reported
by the variable's name."""

from __future__ import annotations

from pathlib import Path

import pytest
from nexus import env
from nexus.db.connect import DatabaseSettings, conninfo
from nexus_cli.main import build_parser, main
from nexus_cli.settings import CliSettings
from nexus_dashboard.settings import DashboardSettings
from nexus_gateway.settings import load as gateway_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in list(vars(env).values()):
        if isinstance(name, str) and name.isupper():
            monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("NEXUS_GATEWAY_DATA_DIR", raising=False)


def test_a_database_comes_from_its_url_or_a_secret_and_neither_is_a_clear_error(monkeypatch):
    with pytest.raises(RuntimeError, match="DATABASE_URL or NEXUS_DB_SECRET_ARN"):
        conninfo(DatabaseSettings())
    monkeypatch.setenv(env.DATABASE_URL, "")  # exported but empty: unset
    with pytest.raises(RuntimeError):
        conninfo(DatabaseSettings())
    monkeypatch.setenv(env.DATABASE_URL, "postgresql://db/nexus")
    assert conninfo(DatabaseSettings()) == "postgresql://db/nexus"


def test_the_dashboard_reads_its_key_data_dir_and_stage_secrets(monkeypatch, tmp_path):
    monkeypatch.setenv(env.DASHBOARD_KEY, "nxd_x")
    monkeypatch.setenv(env.DATA_DIR, str(tmp_path))
    monkeypatch.setenv(env.SECRETS_PREFIX, "nexus-staging/")
    s = DashboardSettings()
    assert (s.dashboard_key, s.data_dir, s.secrets_prefix, s.database_url) == (
        "nxd_x",
        tmp_path,
        "nexus-staging/",
        None,
    )


def test_the_dashboards_factory_names_what_is_missing(monkeypatch):
    from nexus_dashboard.app import create_from_env

    monkeypatch.setenv(env.DASHBOARD_KEY, "nxd_x")
    with pytest.raises(SystemExit, match=r"dashboard: set DATABASE_URL$"):
        create_from_env()


def test_the_gateway_shares_the_stacks_data_dir_unless_it_has_its_own(monkeypatch, tmp_path):
    monkeypatch.setenv(env.DATA_DIR, str(tmp_path / "stack"))
    assert gateway_settings().data_dir == tmp_path / "stack"
    monkeypatch.setenv("NEXUS_GATEWAY_DATA_DIR", str(tmp_path / "own"))
    assert gateway_settings().data_dir == tmp_path / "own"


def test_cli_options_default_to_their_variables_and_an_option_wins(monkeypatch, tmp_path):
    monkeypatch.setenv(env.PROXY_PORT, "4000")
    monkeypatch.setenv(env.GATEWAY, "off")
    monkeypatch.setenv(env.KEYS, "required")
    monkeypatch.setenv(env.DATA_DIR, str(tmp_path))
    parser = build_parser(CliSettings())
    args = parser.parse_args(["dev"])
    assert (args.proxy_port, args.no_gateway, args.keys, args.data_dir) == (4000, True, "required", tmp_path)
    args = parser.parse_args(["dev", "--proxy-port", "4100", "--data-dir", "elsewhere"])
    assert (args.proxy_port, args.data_dir) == (4100, Path("elsewhere"))


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        (env.PROXY_PORT, "abc", "NEXUS_PROXY_PORT: input should be a valid integer"),
        (env.DASHBOARD_PORT, "70000", "NEXUS_DASHBOARD_PORT: input should be less than or equal to 65535"),
        (env.KEYS, "maybe", "NEXUS_KEYS: input should be 'auto', 'required' or 'optional'"),
        (env.GATEWAY, "perhaps", "NEXUS_GATEWAY: input should be a valid boolean"),
    ],
)
def test_a_bad_variable_stops_the_cli_with_its_name(monkeypatch, capsys, name, value, says):
    monkeypatch.setenv(name, value)
    assert main(["keys", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nexus: {says}") and repr(value) in err and "Traceback" not in err
