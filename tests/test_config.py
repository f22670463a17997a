"""One config base, one loader, and no secret in an error message (the reference: tests/test_docs.py)."""

from __future__ import annotations

import typing

import pytest
from pydantic import BaseModel

from edgepose.config import EdgeposeConfig, load_config, looks_secret
from edgepose.config_base import ConfigModel
from edgepose.errors import ConfigError
from tests.procs import edgepose


def _sections(model: type[BaseModel], path: str = ""):
    yield path, model
    for name, f in model.model_fields.items():
        for kind in [f.annotation, *typing.get_args(f.annotation)]:
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                yield from _sections(kind, f"{path}.{name}" if path else name)


def test_every_section_derives_from_the_base_and_describes_every_field():
    undescribed = []
    for path, model in _sections(EdgeposeConfig):
        assert issubclass(model, ConfigModel), f"[{path}] {model.__name__} does not derive from ConfigModel"
        assert model.model_config.get("extra") == "forbid"
        undescribed += [
            f"{path}.{n}".lstrip(".") for n, f in model.model_fields.items() if not (f.description or "").strip()
        ]
    assert not undescribed, f"fields without Field(description=...): {undescribed}"


@pytest.mark.integration
@pytest.mark.parametrize(
    "toml, secret",
    [
        ('[mqtt]\nusername = "u"\npasword = "hunter2-typo"\n', "hunter2-typo"),  # a near-miss of a secret's name
        ('[mqtt]\nusername = "u"\npassword = 424242\n', "424242"),  # a bad value of a secret
        ('[http]\ntoken = "tok-3f9a"\n', "tok-3f9a"),  # an unknown key named like a secret
        ("[mqtt.tls]\nenabled = true\nkey_file = 17\n", "17"),
        ('[mqtt]\nwifi_psk = "psk-value-1"\n', "psk-value-1"),
    ],
)
def test_errors_never_echo_what_may_be_a_secret(tmp_path, toml, secret):
    cfg = tmp_path / "device.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    msg = str(e.value)
    assert secret not in msg and "value not shown" in msg, msg
    r = edgepose("run", "--config", str(cfg), "--source", "x.jpg")
    assert r.returncode == 2 and secret not in r.stderr + r.stdout and "Traceback" not in r.stderr


def test_errors_still_show_ordinary_values_and_suggest_the_key(tmp_path):
    cfg = tmp_path / "device.toml"
    cfg.write_text('[mqtt]\nport = 99999\nusername = "u"\npasword = "x"\n')
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    msg = str(e.value)
    assert "mqtt.port" in msg and "(got 99999)" in msg
    assert "mqtt.pasword: unknown field; did you mean 'password'? (value not shown" in msg


def test_secret_names_and_their_typos_are_recognised_and_ordinary_keys_are_not():
    for name in (
        "password",
        "pasword",
        "passwrod",
        "mqtt_password",
        "token",
        "tokn",
        "psk",
        "pks",
        "wifi_psk",
        "api_key",
        "secret",
        "secert",
        "kye",
        "passphrase",
    ):
        assert looks_secret(name), name
    ordinary = {n for _, m in _sections(EdgeposeConfig) for n in m.model_fields} - {
        "password",
        "password_env",
        "token_env",
        "key_file",
    }
    assert not [n for n in ordinary if looks_secret(n)]


@pytest.mark.integration
def test_one_loader_layers_the_board_profile_for_every_command(tmp_path):
    """``listen`` and ``actions`` read config through the same loader as ``run``: board.toml beside the file applies."""
    (tmp_path / "board.toml").write_text("[mqtt]\nport = 1999\n[model]\nthreads = 3\n")
    dev = tmp_path / "device.toml"
    dev.write_text('device_id = "pi-7"\n[mqtt]\nhost = "broker.lan"\n')
    cfg = load_config(dev, overrides={"mqtt": {"keepalive": 45}})
    assert (cfg.device_id, cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.keepalive, cfg.model.threads) == (
        "pi-7",
        "broker.lan",
        1999,
        45,
        3,
    )
    # listen gives up quickly on the profile's (closed) port: its message names that port, so it used the layered config.
    r = edgepose("listen", "--config", str(dev), "--host", "127.0.0.1", "--connect-timeout", "2", timeout=60)
    assert r.returncode != 0 and "1999" in r.stderr and "Traceback" not in r.stderr


def test_missing_and_malformed_files_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[mqtt\nhost = 1\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(bad)
