"""API keys: several accepted, from flags, a file or the environment; an empty key refused at start-up."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from conformance.cli import main
from reference_server.app import create_app
from reference_server.auth import API_KEY_ENV, ApiKeys, load_api_keys
from reference_server.embedded import run_app
from reference_server.engine import Engine


def test_keys_come_from_flags_a_file_and_the_environment(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text("# team keys\nfrom-file\n\n  second-in-file  \n")
    keys = load_api_keys(["from-flag"], str(key_file), env={API_KEY_ENV: "from-env"})
    for key in ("from-flag", "from-file", "second-in-file", "from-env"):
        assert keys.accepts(key)
    assert not keys.accepts("# team keys")
    assert not keys.accepts("")
    assert not load_api_keys(env={}).required


@pytest.mark.parametrize(
    ("keys", "file_text", "env", "message"),
    [
        ([""], None, {}, "--api-key is empty"),
        (["  "], None, {}, "--api-key is empty"),
        ([], "# only a comment\n\n", {}, "holds no key"),
        ([], None, {API_KEY_ENV: ""}, f"${API_KEY_ENV} is set but empty"),
    ],
)
def test_an_empty_key_is_refused(
    tmp_path: Path, keys: list[str], file_text: str | None, env: dict[str, str], message: str
) -> None:
    key_file = None
    if file_text is not None:
        (tmp_path / "keys").write_text(file_text)
        key_file = str(tmp_path / "keys")
    with pytest.raises(ValueError, match=message.replace("$", r"\$")):
        load_api_keys(keys, key_file, env=env)


def test_an_unreadable_key_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read --api-key-file"):
        load_api_keys([], str(tmp_path / "missing"), env={})


def test_no_empty_key_even_in_code() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        ApiKeys(["ok", ""])


def test_serve_with_an_empty_api_key_exits_2_before_loading(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    assert main(["serve", "--api-key", "", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "--api-key is empty" in err
    assert "Traceback" not in err
    monkeypatch.setenv(API_KEY_ENV, "")
    assert main(["serve", "--port", "0"]) == 2
    assert f"${API_KEY_ENV} is set but empty" in capsys.readouterr().err


def test_each_of_several_keys_is_accepted(reference_engine: Engine) -> None:
    app = create_app(reference_engine, api_keys=ApiKeys(["first", "second"]))
    with run_app(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        for key in ("first", "second"):
            assert client.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert client.get("/v1/models", headers={"x-api-key": "second"}).status_code == 200
        for headers in ({"Authorization": "Bearer third"}, {"Authorization": "Bearer"}, {"x-api-key": ""}, {}):
            refused = client.get("/v1/models", headers=headers)
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "invalid_api_key"
