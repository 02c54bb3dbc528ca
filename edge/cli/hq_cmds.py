"""`edge-gateway hq` (the reference HQ service), `fleet` (the operator's live table) and
`demo-register` (a simulated register for the demo).

Broker settings come from the `[hq.broker]` section of the configuration (so a gateway's
config file works as is) and can be overridden with flags.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import uvloop

from edge import logs
from edge.cli.common import settings_from
from edge.contract.recon import MismatchKind, Pattern
from edge.mqtt.settings import BrokerSettings, TlsSettings

if TYPE_CHECKING:
    from edge.hq.store import HqStore

DB_ENV = "EDGE_HQ_DATABASE_URL"
DB_HELP = (
    "HQ store: an SQLite file, sqlite+aiosqlite:///path or postgresql+psycopg://user@host/db"
    f" (default: ${DB_ENV}, else DATA_DIR/hq.sqlite3)"
)
LEASE_HELP = "seconds an instance holds a refund while it calls the processor (default: 60)"

HTTP_HELP = (
    "fleet page, /metrics and /healthz on HOST:PORT or PORT (default 127.0.0.1:8090; 0/off: none)"
)


def register(sub: Any) -> None:
    hq = sub.add_parser("hq", help="run the reference HQ service (or manage its store)")
    _broker_flags(hq)
    hq.add_argument("--db", default=None, help=DB_HELP)
    hq.add_argument("--claim-lease", type=float, default=60.0, help=LEASE_HELP)
    hq.add_argument("--instance", default=None, help="instance name (default: host-pid)")
    hq.add_argument("--group", default="hq", help="shared-subscription group (default: hq)")
    hq.add_argument("--settle-workers", type=int, default=8)
    hq.add_argument(
        "--decline-card-over",
        default="500.00",
        help='simulated processor: decline card refunds over this amount ("none": never)',
    )
    hq.add_argument("--delay-s", type=float, default=0.0, help="simulated processor latency")
    hq.add_argument("--failure-rate", type=float, default=0.0, help="simulated outages, 0..1")
    hq.add_argument(
        "--stats-interval", type=float, default=30.0, help="presence with counters, every N s"
    )
    hq.add_argument("--http", default="127.0.0.1:8090", help=HTTP_HELP)
    hq.add_argument(
        "--erp-profile",
        choices=("shopify", "netsuite", "sap"),
        default=None,
        help="simulated ERP: book each settled refund as this system's document",
    )
    hq.add_argument(
        "--recon-hour", type=int, default=2, help="daily reconciliation digests at HH:00 UTC"
    )
    hq.add_argument(
        "--recon-interval",
        type=float,
        default=None,
        help="send digests every N seconds instead of daily (demos, tests)",
    )
    hq.add_argument(
        "--recon-period", type=float, default=24.0, help="hours each digest covers (default 24)"
    )
    hq.add_argument("--no-recon-schedule", action="store_true", help="send digests only when asked")
    hq.set_defaults(func=_hq_run)
    hq_sub = hq.add_subparsers(dest="hq_command", metavar="SUBCOMMAND")
    run = hq_sub.add_parser("run", help="run the service (the default)")
    run.add_argument("--http", default=argparse.SUPPRESS, help=HTTP_HELP)
    run.add_argument("--db", default=argparse.SUPPRESS, help=DB_HELP)
    run.add_argument("--claim-lease", type=float, default=argparse.SUPPRESS, help=LEASE_HELP)
    run.set_defaults(func=_hq_run)
    orders = hq_sub.add_parser("orders", help="online orders HQ answers look-ups from")
    orders_sub = orders.add_subparsers(dest="orders_command", required=True, metavar="ACTION")
    load = orders_sub.add_parser("load", help="load sales (a JSON array or one per line)")
    load.add_argument("file", type=Path)
    load.add_argument("--db", default=argparse.SUPPRESS, help=DB_HELP)
    load.set_defaults(func=_orders_load)
    status = hq_sub.add_parser("status", help="events, gaps and refunds held by the HQ store")
    status.add_argument("--json", action="store_true")
    status.add_argument("--db", default=argparse.SUPPRESS, help=DB_HELP)
    status.set_defaults(func=_hq_status)
    _recon_commands(hq_sub)

    fleet = sub.add_parser("fleet", help="live table of every gateway on the broker")
    _broker_flags(fleet)
    fleet.add_argument("--json", action="store_true", help="print the fleet once as JSON")
    fleet.add_argument("--once", action="store_true", help="print the table once and exit")
    fleet.add_argument("--interval", type=float, default=2.0, help="refresh period (s)")
    fleet.set_defaults(func=_fleet)

    demo = sub.add_parser("demo-register", help="a simulated register for the demo")
    demo.add_argument("--url", default="http://127.0.0.1:8080")
    demo.add_argument("--client-id", required=True)
    demo.add_argument("--client-secret", required=True)
    demo.add_argument("--every", type=float, default=2.0, help="seconds between customers")
    demo.add_argument("--count", type=int, default=0, help="stop after N customers (0: never)")
    demo.add_argument("--online-orders", default="", help="sale id prefix of HQ's demo orders")
    demo.set_defaults(func=_demo_register)


def _broker_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker-host", default=None)
    parser.add_argument("--broker-port", type=int, default=None)
    parser.add_argument("--prefix", default=None, help="topic prefix (default: retail/v1)")
    parser.add_argument("--tls-ca", type=Path, default=None, help="CA file (enables TLS)")
    parser.add_argument("--tls-cert", type=Path, default=None, help="client certificate")
    parser.add_argument("--tls-key", type=Path, default=None, help="client key")
    parser.add_argument("--username", default=None)


def broker_from(args: argparse.Namespace) -> tuple[BrokerSettings, str]:
    """The configured broker with the flags applied, and the topic prefix."""
    hq = settings_from(args).hq
    changes: dict[str, Any] = {}
    if args.broker_host:
        changes["host"] = args.broker_host
    if args.broker_port:
        changes["port"] = args.broker_port
    if args.username:
        changes["username"] = args.username
    if args.tls_ca or args.tls_cert:
        changes["tls"] = TlsSettings(
            enabled=True, ca_file=args.tls_ca, cert_file=args.tls_cert, key_file=args.tls_key
        )
    broker = BrokerSettings.model_validate({**hq.broker.model_dump(), **changes})
    return broker, args.prefix or hq.prefix


def _until_signal(main: Any) -> int:
    async def runner() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return int(await main(stop))

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as loop_runner:
        return loop_runner.run(runner())


def _hq_run(args: argparse.Namespace) -> int:
    from edge.hq.database import DatabaseUrlError, database_url  # noqa: PLC0415
    from edge.hq.runner import HqRunOptions, run_hq  # noqa: PLC0415 - loaded only when run
    from edge.hq.web import parse_http  # noqa: PLC0415

    try:
        http = parse_http(args.http)
    except ValueError as exc:
        print(f"--http {args.http}: {exc}", file=sys.stderr)
        return 2
    try:
        database_url(_hq_db(args) or "hq.sqlite3")
    except DatabaseUrlError as exc:
        print(f"--db: {exc}", file=sys.stderr)
        return 2

    settings = settings_from(args)
    logs.configure(settings.logging.level, settings.logging.format)
    broker, prefix = broker_from(args)
    options = HqRunOptions(
        broker=broker,
        prefix=prefix,
        db_path=settings.data_dir / "hq.sqlite3",
        db_url=_hq_db(args),
        claim_lease_s=args.claim_lease,
        instance=args.instance,
        group=args.group,
        settle_workers=args.settle_workers,
        decline_card_over=None if args.decline_card_over == "none" else args.decline_card_over,
        delay_s=args.delay_s,
        failure_rate=args.failure_rate,
        stats_interval_s=args.stats_interval,
        http_host=http[0] if http else "127.0.0.1",
        http_port=http[1] if http else 0,
        erp_profile=args.erp_profile,
        recon_schedule=not args.no_recon_schedule,
        recon_hour_utc=args.recon_hour,
        recon_interval_s=args.recon_interval,
        recon_period_s=args.recon_period * 3600,
    )
    return _until_signal(lambda stop: run_hq(options, stop))


def _hq_db(args: argparse.Namespace) -> str | None:
    """The store named by --db or the environment; None: the SQLite file in DATA_DIR."""
    return str(args.db) if args.db else os.environ.get(DB_ENV) or None


def _open_store(args: argparse.Namespace) -> HqStore:
    from edge.hq.store import HqStore  # noqa: PLC0415

    return HqStore(_hq_db(args) or settings_from(args).data_dir / "hq.sqlite3")


def _orders_load(args: argparse.Namespace) -> int:
    from edge.hq import store as hq_store  # noqa: PLC0415

    text = args.file.read_text(encoding="utf-8").strip()
    sales = json.loads(text) if text.startswith("[") else [json.loads(x) for x in text.splitlines()]

    async def load() -> int:
        async with _open_store(args) as store:
            count: int = await store.write(partial(hq_store.load_orders, sales=sales))
        return count

    count = asyncio.run(load())
    print(f"loaded {count} online orders into the HQ store")
    return 0


def _hq_status(args: argparse.Namespace) -> int:
    from edge.hq import store as hq_store  # noqa: PLC0415

    async def read() -> tuple[list[dict[str, Any]], dict[str, int]]:
        async with _open_store(args) as store:
            return (
                await store.read(hq_store.stream_report),
                await store.read(hq_store.refund_counts),
            )

    streams, refunds = asyncio.run(read())
    if args.json:
        print(json.dumps({"streams": streams, "refunds": refunds}))
        return 0
    for s in streams:
        gap = "no gap" if s["gap"] is None else f"GAP after {s['gap']['after']}"
        print(
            f"{s['store_id']}/{s['gateway_id']}: {s['received']} events,"
            f" {s['duplicates']} duplicates, contiguous to {s['contiguous_through']}, {gap}"
        )
    print("refunds: " + (", ".join(f"{k} {v}" for k, v in sorted(refunds.items())) or "none"))
    return 0


def _fleet(args: argparse.Namespace) -> int:
    from edge.hq.fleet_watch import watch_fleet  # noqa: PLC0415

    broker, prefix = broker_from(args)
    once = args.once or args.json

    async def main(stop: asyncio.Event) -> int:
        return await watch_fleet(
            broker, prefix, stop, json_out=args.json, once=once, interval_s=args.interval
        )

    return _until_signal(main)


def _demo_register(args: argparse.Namespace) -> int:
    from edge.hq.demo_register import run_register  # noqa: PLC0415

    async def main(stop: asyncio.Event) -> int:
        return await run_register(
            args.url,
            args.client_id,
            args.client_secret,
            stop,
            every_s=args.every,
            count=args.count,
            online_prefix=args.online_orders,
            out=sys.stdout,
        )

    return _until_signal(main)


# ---- reconciliation ---------------------------------------------------------------------

# every contract mismatch kind and pattern (the wire contract's own slugs)
RECON_KINDS = get_args(MismatchKind) + get_args(Pattern)


def _recon_commands(hq_sub: Any) -> None:
    recon = hq_sub.add_parser("recon", help="reconciliation: digests, reports, injections")
    sub = recon.add_subparsers(dest="recon_command", required=True, metavar="ACTION")

    digest = sub.add_parser("digest", help="build a store's digest now and publish it")
    digest.add_argument("--store", required=True)
    digest.add_argument("--gateway", default=None, help="default: every gateway of the store")
    digest.add_argument("--from", dest="from_", default=None, help="RFC 3339 (default: to - 24 h)")
    digest.add_argument("--to", default=None, help="RFC 3339, exclusive (default: now)")
    digest.add_argument(
        "--dry-run", action="store_true", help="print the digests as JSON, publish nothing"
    )
    digest.add_argument("--timeout", type=float, default=10.0, help="seconds for the broker")
    digest.add_argument("--db", default=argparse.SUPPRESS, help=DB_HELP)
    for flag in ("--broker-host", "--prefix"):
        digest.add_argument(flag, default=argparse.SUPPRESS)
    digest.add_argument("--broker-port", type=int, default=argparse.SUPPRESS)
    digest.set_defaults(func=_recon_digest)

    report = sub.add_parser("report", help="open mismatches across the fleet")
    report.add_argument("--format", choices=("table", "json", "csv"), default="table")
    report.add_argument("--db", default=argparse.SUPPRESS, help=DB_HELP)
    report.set_defaults(func=_recon_report)

    inject = sub.add_parser(
        "inject", help="make the simulated ERP or storefront hold a mismatch (demo, tests)"
    )
    inject.add_argument("what", choices=RECON_KINDS, metavar="KIND_OR_PATTERN")
    inject.add_argument("--store", required=True)
    inject.add_argument("--gateway", default=None)
    inject.add_argument("--return-id", default=None, help="default: the newest settled refund")
    inject.add_argument("--units", type=int, default=1, help="amount-mismatch: minor units")
    inject.add_argument("--currency", default=None, help="currency-mismatch / new refunds")
    inject.add_argument("--delay-h", type=float, default=4.0, help="async-gap: ERP batch delay")
    inject.add_argument("--mapping", choices=("units", "tender"), default="units")
    inject.add_argument("--amount", default="25.00", help="refunds the store never saw")
    inject.add_argument("--sale-id", default=None, help="refunds the store never saw")
    inject.add_argument("--db", default=argparse.SUPPRESS, help=DB_HELP)
    inject.set_defaults(func=_recon_inject)

    erp_map = sub.add_parser("erp-map", help="show a refund as an ERP profile maps it")
    erp_map.add_argument("--profile", choices=("shopify", "netsuite", "sap"), required=True)
    erp_map.add_argument("--return-id", required=True)
    erp_map.add_argument("--db", default=argparse.SUPPRESS, help=DB_HELP)
    erp_map.set_defaults(func=_recon_erp_map)


def _recon_digest(args: argparse.Namespace) -> int:
    from datetime import timedelta  # noqa: PLC0415

    from edge.contract.payloads import encode  # noqa: PLC0415
    from edge.contract.timefmt import parse_iso, utcnow  # noqa: PLC0415
    from edge.contract.topics import GatewayTopics  # noqa: PLC0415
    from edge.errors import MqttLinkError  # noqa: PLC0415
    from edge.hq.recon import digest as recon_digest  # noqa: PLC0415
    from edge.hq.recon.publish import publish_confirmed  # noqa: PLC0415

    try:
        to = parse_iso(args.to) if args.to else utcnow()
        start = parse_iso(args.from_) if args.from_ else to - timedelta(hours=24)
        period = recon_digest.Period(start, to)
    except ValueError as exc:
        print(f"--from/--to: {exc}", file=sys.stderr)
        return 2
    if start.tzinfo is None or to.tzinfo is None or to <= start:
        print("--from/--to: give RFC 3339 times with an offset, --to after --from", file=sys.stderr)
        return 2
    broker, prefix = broker_from(args)

    async def build() -> list[tuple[str, str, Any]]:
        async with _open_store(args) as store:
            gws = (
                [args.gateway]
                if args.gateway
                else await store.read(partial(recon_digest.gateways_of_store, store_id=args.store))
            )
            out = []
            for gw in gws:
                now = utcnow()
                for d in await store.read(
                    partial(
                        recon_digest.build_digests,
                        store_id=args.store,
                        gateway_id=gw,
                        period=period,
                        now=now,
                    )
                ):
                    out.append((args.store, gw, d))
            return out

    async def record(built: list[tuple[str, str, Any]]) -> None:
        async with _open_store(args) as store:
            for store_id, gw, d in built:
                await store.write(
                    partial(
                        recon_digest.record_digest,
                        digest=d,
                        store_id=store_id,
                        gateway_id=gw,
                        trigger="operator",
                        instance=None,
                    )
                )

    built = asyncio.run(build())
    if not built:
        print(
            f"HQ knows no gateway of store {args.store}; name one with --gateway", file=sys.stderr
        )
        return 1
    if args.dry_run:
        for _s, _g, d in built:
            print(encode(d).decode())
        return 0
    messages = [(GatewayTopics(prefix, s_id, gw).recon_digest, encode(d)) for s_id, gw, d in built]
    try:
        asyncio.run(publish_confirmed(broker, messages, timeout_s=args.timeout))
    except MqttLinkError as exc:
        print(f"digest not confirmed by the broker: {exc}", file=sys.stderr)
        return 1
    asyncio.run(record(built))
    for (s_id, gw, d), (topic, _) in zip(built, messages, strict=True):
        print(f"{d.digest_id}: {len(d.refunds)} refunds for {s_id}/{gw} on {topic}")
    return 0


def _recon_report(args: argparse.Namespace) -> int:
    from edge.hq.recon.reports import recon_view, view_csv, view_table  # noqa: PLC0415

    async def read() -> dict[str, Any]:
        async with _open_store(args) as store:
            return await store.read(recon_view)

    view = asyncio.run(read())
    if args.format == "json":
        print(json.dumps(view))
    elif args.format == "csv":
        sys.stdout.write(view_csv(view))
    else:
        sys.stdout.write(view_table(view))
    return 0


def _recon_inject(args: argparse.Namespace) -> int:
    from decimal import Decimal, InvalidOperation  # noqa: PLC0415

    from edge.contract.timefmt import utcnow  # noqa: PLC0415
    from edge.hq.recon.inject import InjectError, InjectOptions, inject  # noqa: PLC0415

    try:
        amount = Decimal(args.amount)
    except InvalidOperation:
        print(f"--amount: not a decimal: {args.amount}", file=sys.stderr)
        return 2
    options = InjectOptions(
        units=args.units,
        currency=args.currency,
        delay_h=args.delay_h,
        mapping=args.mapping,
        amount=amount,
        sale_id=args.sale_id,
    )

    async def run() -> dict[str, Any]:
        async with _open_store(args) as store:
            planted = await store.write(
                partial(
                    inject,
                    what=args.what,
                    store_id=args.store,
                    gateway_id=args.gateway,
                    return_id=args.return_id,
                    options=options,
                    now=utcnow(),
                )
            )
            return planted.as_dict()

    try:
        print(json.dumps(asyncio.run(run()), indent=2))
    except InjectError as exc:
        print(f"cannot inject {args.what}: {exc}", file=sys.stderr)
        return 1
    return 0


def _recon_erp_map(args: argparse.Namespace) -> int:
    from edge.hq import settlement  # noqa: PLC0415
    from edge.hq.processor import RefundRequest  # noqa: PLC0415
    from edge.hq.recon.erp_profiles import MissingReference, profile  # noqa: PLC0415

    async def read() -> Any:
        async with _open_store(args) as store:
            return await store.read(partial(settlement.refund_request, return_id=args.return_id))

    row = asyncio.run(read())
    if row is None:
        print(f"HQ holds no refund {args.return_id}", file=sys.stderr)
        return 1
    try:
        document = profile(args.profile).document(RefundRequest.from_row(row), row["processor_ref"])
    except MissingReference as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(document, indent=2))
    return 0
