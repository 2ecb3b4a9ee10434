"""``python -m flask_spark.sandbox``: run the local Spark Platform in the foreground."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from ..core.http import is_loopback_host
from .server import serve
from .state import DEFAULT_ACCESS_TOKEN_LIFETIME, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad value answered in one line (not the whole usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (--help lists the options)\n")


def _port(text: str) -> int:
    """A TCP port number, or 0 for a free one."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0 to 65535; 0 picks a free one)")
    return port


def _seconds(text: str) -> int:
    """A positive number of seconds."""
    try:
        seconds = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds") from None
    if seconds < 1:
        raise argparse.ArgumentTypeError(f"{seconds} is not a lifetime (at least 1 second)")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = _Parser(
        prog="python -m flask_spark.sandbox",
        description="A local Spark Platform (OpenID provider, Spark API, RESO Web API) for "
        "development and tests. It has no real security: anyone who can reach it can sign in "
        "as any demo member.",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to bind (default: %(default)s; a loopback address unless --allow-remote)",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=5001,
        help="port to listen on (default: %(default)s; 0 picks a free one)",
    )
    parser.add_argument(
        "--access-token-lifetime",
        type=_seconds,
        default=DEFAULT_ACCESS_TOKEN_LIFETIME,
        metavar="SECONDS",
        help="access token lifetime (default: %(default)s, Spark's 24 h; short values "
        "exercise refresh)",
    )
    parser.add_argument(
        "--client-id",
        default=DEFAULT_CLIENT_ID,
        metavar="ID",
        help="the client id your app sends as SPARK_CLIENT_ID (default: %(default)s)",
    )
    parser.add_argument(
        "--client-secret",
        default=DEFAULT_CLIENT_SECRET,
        metavar="SECRET",
        help="the client secret your app sends as SPARK_CLIENT_SECRET (default: %(default)s)",
    )
    parser.add_argument(
        "--redirect-uri",
        action="append",
        default=[],
        dest="redirect_uris",
        metavar="URI",
        help="a registered redirect URI (repeatable; with none, any loopback URI is accepted)",
    )
    parser.add_argument(
        "--post-logout-redirect-uri",
        action="append",
        default=[],
        dest="post_logout_redirect_uris",
        metavar="URI",
        help="a registered post-logout redirect URI (repeatable; with none, any loopback URI)",
    )
    parser.add_argument(
        "--frontchannel-logout-uri",
        default=None,
        metavar="URI",
        help="the app's front-channel logout URI, loaded in an iframe when the member signs "
        "out at the provider (e.g. http://127.0.0.1:5000/spark/single-logout)",
    )
    parser.add_argument(
        "--backchannel-logout-uri",
        default=None,
        metavar="URI",
        help="the app's back-channel logout URI, sent a signed logout_token when the member "
        "signs out at the provider (e.g. http://127.0.0.1:5000/spark/backchannel-logout)",
    )
    parser.add_argument(
        "--generic",
        action="store_true",
        help="act as a generic OpenID provider (PKCE required, iss, sid, front-/back-channel "
        "logout) instead of mirroring sparkplatform.com",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow binding a non-loopback interface (the sandbox has no real security)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and serve until Ctrl-C."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.allow_remote and not is_loopback_host(args.host):
        parser.error(
            f"refusing to serve on the non-loopback host {args.host!r}: the sandbox has no "
            "real security (pass --allow-remote to insist)"
        )
    serve(
        args.host,
        args.port,
        allow_remote=args.allow_remote,
        access_token_lifetime=args.access_token_lifetime,
        client_id=args.client_id,
        client_secret=args.client_secret,
        redirect_uris=args.redirect_uris,
        post_logout_redirect_uris=args.post_logout_redirect_uris,
        frontchannel_logout_uri=args.frontchannel_logout_uri,
        backchannel_logout_uri=args.backchannel_logout_uri,
        generic=args.generic,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
