"""``python -m flask_spark.sandbox``: run the local Spark Platform in the foreground."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..core.http import is_loopback_host
from .server import serve
from .state import DEFAULT_ACCESS_TOKEN_LIFETIME, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m flask_spark.sandbox",
        description="A local Spark Platform (OpenID provider, Spark API, RESO Web API).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (loopback)")
    parser.add_argument("--port", type=int, default=5001, help="port (0 picks a free one)")
    parser.add_argument(
        "--access-token-lifetime",
        type=int,
        default=DEFAULT_ACCESS_TOKEN_LIFETIME,
        help="access token lifetime in seconds (short values exercise refresh)",
    )
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument(
        "--redirect-uri",
        action="append",
        default=[],
        dest="redirect_uris",
        help="registered redirect URI (repeatable; none registered = any loopback URI)",
    )
    parser.add_argument(
        "--post-logout-redirect-uri",
        action="append",
        default=[],
        dest="post_logout_redirect_uris",
        help="registered post-logout redirect URI (repeatable; none = any loopback URI)",
    )
    parser.add_argument("--frontchannel-logout-uri", default=None)
    parser.add_argument("--backchannel-logout-uri", default=None)
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
    args = build_parser().parse_args(argv)
    if not args.allow_remote and not is_loopback_host(args.host):
        print(
            f"error: refusing to serve on non-loopback host {args.host!r} "
            "(pass --allow-remote to insist)",
            file=sys.stderr,
        )
        return 2
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
