"""The command lines people type: help for every option, one-line errors for bad values."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

import click
import pytest

from flask_spark.__main__ import main as flask_spark_main
from flask_spark.ext.cli import spark_cli
from flask_spark.sandbox.__main__ import build_parser
from flask_spark.sandbox.__main__ import main as sandbox_main

ROOT = Path(__file__).resolve().parent.parent


def test_every_sandbox_option_has_help() -> None:
    parser = build_parser()
    options = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    assert options
    for action in options:
        assert action.help, f"{action.option_strings} has no help text"


def test_every_flask_spark_command_option_has_help() -> None:
    groups: list[click.Group] = [spark_cli, flask_spark_main]
    for group in groups:
        for name, command in group.commands.items():
            assert command.help, f"{name} has no help"
            for param in command.params:
                if isinstance(param, click.Option):
                    assert param.help, f"{name} {param.opts} has no help text"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--port", "99999"], "99999 is not a port"),
        (["--port", "abc"], "'abc' is not a port number"),
        (["--access-token-lifetime", "-5"], "-5 is not a lifetime"),
        (["--host", "0.0.0.0"], "--allow-remote"),  # noqa: S104
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_sandbox_values_are_one_line(
    args: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        sandbox_main(args)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert says in err
    assert err.startswith("python -m flask_spark.sandbox: error: ")


@pytest.mark.slow
def test_python_m_flask_spark_sandbox_with_a_remote_host_is_one_line() -> None:
    """What the issue saw as a 28-line traceback: one line and status 2."""
    done = subprocess.run(
        [sys.executable, "-m", "flask_spark", "sandbox", "--host", "0.0.0.0"],  # noqa: S104
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_demo_stops_in_one_line_when_its_port_is_taken() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPARK_")}
        done = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "demo.py")],
            env={**env, "PORT": str(port)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"demo: port {port} for the app is in use; choose another, e.g. "
        f"PORT={port + 50} ./scripts/demo"
    )
