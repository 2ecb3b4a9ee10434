"""``flask spark ...``: keygen, rotate-keys, retry-revocations, sandbox and doctor."""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from collections import Counter

import click
from cryptography.fernet import Fernet
from flask import current_app
from flask.cli import AppGroup, ScriptInfo
from flask.ctx import AppContext

from ..core.errors import SparkConfigError
from ..core.refresh import RevocationQueue
from .context import current_state
from .doctor import diagnose


class SparkGroup(AppGroup):
    """The ``spark`` group, with the app's own ``spark`` commands beside flask-spark's (``flask``
    finds a plugin's group first, which would hide the app's); a name both use is flask-spark's."""

    def _apps_own(self, ctx: click.Context) -> click.Group:
        try:
            app = ctx.ensure_object(ScriptInfo).load_app()
        except Exception:  # an app that cannot be loaded has no commands to offer
            return click.Group()
        own = app.cli.commands.get(self.name or "spark")
        return own if isinstance(own, click.Group) and own is not self else click.Group()

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, cmd_name) or self._apps_own(ctx).get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._apps_own(ctx).list_commands(ctx)})


class SparkCommand(click.Command):
    """A ``flask spark`` command that says where Flask's own options go (``flask --debug spark
    doctor``) when one is given after the command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            name = exc.option_name
            if name not in ("--app", "-A", "--debug", "--no-debug", "--env-file", "-e"):
                raise
            value = "" if name in ("--debug", "--no-debug") else " ..."
            raise click.NoSuchOption(
                name,
                f"No such option: {name}. It is Flask's: put it before the command, as in "
                f"`flask {name}{value} spark {self.name}`.",
                ctx=ctx,
            ) from None


spark_cli = SparkGroup("spark", help="flask-spark: keys, the local sandbox and health checks.")
spark_cli.command_class = SparkCommand


@spark_cli.command("keygen", with_appcontext=False)
def keygen() -> None:
    """Print a new Fernet key for SPARK_TOKEN_KEYS."""
    click.echo(Fernet.generate_key().decode())


def _app_context(ctx: click.Context) -> AppContext:
    """The app's context; a configuration error is one clear line, not a traceback."""
    try:
        app = current_app or ctx.ensure_object(ScriptInfo).load_app()
        if "spark.unconfigured" in app.extensions:
            raise app.extensions["spark.unconfigured"]
    except SparkConfigError as exc:
        raise click.ClickException(exc.message) from None
    return app.app_context()


@spark_cli.command("rotate-keys", with_appcontext=False)
@click.pass_context
def rotate_keys(ctx: click.Context) -> None:
    """Re-encrypt every stored token record with the first key of SPARK_TOKEN_KEYS."""
    with _app_context(ctx):
        store = current_state().tokens
        counts = Counter(store.rotate_key(key) for key in store.scan_keys())
    click.echo(
        f"rotated {counts['rotated']}, skipped {counts['skipped']} (already on the first key), "
        f"unreadable {counts['unreadable']}"
    )


@spark_cli.command("retry-revocations", with_appcontext=False)
@click.pass_context
def retry_revocations(ctx: click.Context) -> None:
    """Retry the token revocations that failed at sign-out, for a week (run it from cron)."""
    with _app_context(ctx):
        state = current_state()
        queue = RevocationQueue(state.redis, state.config.key_prefix, state.vault)
        report = queue.retry(state.oidc)
    click.echo(
        f"revoked {report.revoked}, pending {queue.size()}, dropped {report.dropped} "
        f"(too old), unreadable {report.unreadable}"
    )


@spark_cli.command(
    "sandbox",
    with_appcontext=False,
    context_settings={"ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def sandbox(args: tuple[str, ...]) -> None:
    """Run the local Spark Platform sandbox (`python -m flask_spark.sandbox`; see --help)."""
    os.execv(sys.executable, [sys.executable, "-m", "flask_spark.sandbox", *args])  # noqa: S606


@spark_cli.command("doctor", with_appcontext=False)
@click.option("--strict", is_flag=True, help="Fail on warnings too (e.g. debug-only settings).")
@click.pass_context
def doctor(ctx: click.Context, strict: bool) -> None:
    """Check the app's configuration, Redis, keys, provider, redirect URI and session cookie;
    exit with status 1 when a check fails."""
    load_app = ctx.ensure_object(ScriptInfo).load_app
    if current_app:  # already inside the app's context
        load_app = current_app._get_current_object  # type: ignore[attr-defined]
    results = diagnose(load_app)
    width = max(len(r.name) for r in results)
    indent = " " * (width + 8)
    columns = min(max(shutil.get_terminal_size().columns, 80), 120)
    colors = {"OK": "green", "WARN": "yellow", "FAIL": "red"}
    for r in results:
        mark = click.style(r.status.ljust(4), fg=colors[r.status], bold=r.status != "OK")
        lines = _wrap(r.detail, columns - len(indent)) or [""]
        click.echo(f"{mark}  {r.name.ljust(width)}  {lines[0]}")
        for line in lines[1:] + _wrap(f"fix: {r.fix}" if r.fix else "", columns - len(indent)):
            click.echo(indent + line)
    failed = [r for r in results if r.status == "FAIL" or (strict and r.status == "WARN")]
    if failed:
        click.echo(f"\n{len(failed)} of {len(results)} checks failed.")
        ctx.exit(1)
    warned = sum(r.status == "WARN" for r in results)
    note = f" ({warned} warning(s): fine for development only)" if warned else ""
    click.echo(f"\nAll {len(results)} checks passed{note}.")


def _wrap(text: str, width: int) -> list[str]:
    """Lines of at most ``width`` where possible: a URL or command is never cut."""
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)
