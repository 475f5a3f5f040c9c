"""Tests for the hints of `conformance serve` when it cannot listen: the host or the port, whichever is wrong."""

from __future__ import annotations

import socket

import pytest

from conformance.cli import main


def test_an_address_not_of_this_machine_blames_the_host(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--host", "8.8.8.8", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("conformance serve: cannot listen on 8.8.8.8:0 (")
    assert "--host must be an address of this machine, e.g. 127.0.0.1 or 0.0.0.0" in err
    assert "--port" not in err


def test_a_busy_port_blames_the_port(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--host", "127.0.0.1", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert (
        err == f"conformance serve: cannot listen on 127.0.0.1:{port} (Address already in use); pick another --port\n"
    )
