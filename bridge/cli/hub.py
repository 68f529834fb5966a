"""``mtbridge serve``, ``token`` and ``revoke``: run the hub and manage its credentials.

``register(subparsers)`` adds them to the ``mtbridge`` parser (:mod:`bridge.cli`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any, Literal

from bridge.config import Settings, load_settings

__all__ = ["register"]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML configuration file (or MTBRIDGE_CONFIG)")
    p.add_argument("--data-dir", type=Path, help="data directory (default ./mtbridge-data)")


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    return load_settings(args.config, data_dir=args.data_dir, **extra)


def cmd_serve(args: argparse.Namespace) -> int:
    from bridge.server import install_log_redaction, run

    settings = _settings(
        args,
        host=args.host,
        port=args.port,
        database_url=args.database_url,
        test_mode=True if args.test_mode else None,
        log_level=args.log_level,
        allowed_origins=args.allowed_origin or None,
        trusted_proxies=args.trusted_proxy or None,
        redis_url=args.redis_url,
        node_id=args.node_id,
    )
    problem = settings.cluster_problem()
    if problem is not None:
        print(f"mtbridge: {problem}", file=sys.stderr)
        return 2
    install_log_redaction()
    print(
        f"mtbridge hub on http://{settings.host}:{settings.port}/ (WebSocket /ws), "
        f"data in {settings.data_dir.resolve()}",
        file=sys.stderr,
        flush=True,
    )
    run(settings)
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from bridge.auth.tokens import issue, load_or_create_secret

    settings = _settings(args)
    if not settings.hmac:
        print("tokens for RS*/ES* configurations are issued by your identity provider", file=sys.stderr)
        return 2
    secret, created = load_or_create_secret(settings.secret_path)
    if created:
        print(f"generated a new signing secret at {settings.secret_path} (mode 0600)", file=sys.stderr)
    token = issue(
        secret,
        sub=args.sub,
        role=args.role,
        now=time.time(),
        ttl=args.ttl,
        accounts=args.account,
        groups=args.group,
        subscribe=args.subscribe,
        publish=args.publish,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        algorithm=settings.jwt_algorithms[0],
        jti=args.jti,
    )
    print(token)
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    """Persist a revocation in the hub's database; running hubs close its connections within a second."""
    from bridge.store import open_store

    settings = _settings(args, database_url=args.database_url)
    kind: Literal["jti", "sub"] = "jti" if args.jti else "sub"
    value: str = args.jti or args.sub
    now_ms = int(time.time() * 1000)
    expires_ms = now_ms + int(args.days * 86400 * 1000)

    async def go() -> int:
        store = await open_store(settings.db_url)
        try:
            await store.revoke(
                kind, value, revoked_at_ms=now_ms, expires_at_ms=expires_ms, reason=args.reason
            )
        finally:
            await store.close()
        print(f"revoked {kind} {value}")
        return 0

    return run_async(go())


def register(subparsers: Any) -> None:
    """Add ``serve``, ``token`` and ``revoke`` to the ``mtbridge`` subparsers."""
    serve = subparsers.add_parser("serve", help="run the hub (embedded defaults: SQLite, in-process broker)")
    _common(serve)
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port for HTTP and /ws (default 8765)")
    serve.add_argument("--database-url", help="SQLAlchemy URL, e.g. postgresql+asyncpg://user@host/db")
    serve.add_argument(
        "--redis-url", help="redis://host:port/db: run as one node of a cluster (needs PostgreSQL)"
    )
    serve.add_argument("--node-id", help="this node's name in a cluster (default <hostname>-<pid>)")
    serve.add_argument(
        "--allowed-origin", action="append", default=[], help="browser Origin allowed (repeat)"
    )
    serve.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="CIDR",
        help="reverse proxy whose X-Forwarded-For the per-IP limits believe (repeat)",
    )
    serve.add_argument("--log-level", help="debug, info, warning, error")
    serve.add_argument(
        "--test-mode", action="store_true", help="enable the /echo route (conformance tests only)"
    )
    serve.set_defaults(func=cmd_serve)

    token = subparsers.add_parser("token", help="print a JWT signed with the hub's secret")
    _common(token)
    token.add_argument("--role", required=True, choices=["engine", "ea", "dashboard", "admin"])
    token.add_argument("--sub", required=True, help="subject: who the token is for")
    token.add_argument("--account", action="append", default=[], help="MT5 login this token holds (repeat)")
    token.add_argument("--group", action="append", default=[], help="account group (repeat)")
    token.add_argument("--subscribe", action="append", default=[], help="channel pattern, e.g. 'signals:*'")
    token.add_argument("--publish", action="append", default=[], help="channel pattern, e.g. 'signals:alpha'")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    token.add_argument(
        "--jti", help="token id (default: random); revoke it later with `mtbridge revoke --jti`"
    )
    token.set_defaults(func=cmd_token)

    revoke = subparsers.add_parser("revoke", help="revoke a token id or a whole subject (persisted)")
    _common(revoke)
    who = revoke.add_mutually_exclusive_group(required=True)
    who.add_argument("--jti", help="the token id to revoke")
    who.add_argument("--sub", help="the subject whose tokens (issued until now) are revoked")
    revoke.add_argument("--database-url", help="the hub's database (default: SQLite in --data-dir)")
    revoke.add_argument(
        "--days", type=float, default=365.0, help="how long the revocation is kept (default 365)"
    )
    revoke.add_argument("--reason", help="why, for the audit trail")
    revoke.set_defaults(func=cmd_revoke)


def run_async(coro: Any) -> int:
    """Run a command's coroutine to its exit status."""
    result: int = asyncio.run(coro)
    return result
