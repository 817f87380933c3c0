"""Console benchmark: 200,000 tickets (a year of a mid-sized company) on SQLite and PostgreSQL, and the pages the
night shift opens, timed as a logged-in night-shift member through Flask's test client (in process: the
app's whole request — routing, log-in check, SQL, templates — without a network or server in the way).

    .venv/bin/python -m scripts.bench_console                      # SQLite, and a throwaway PostgreSQL
    .venv/bin/python -m scripts.bench_console --tickets 20000 --no-postgres
    .venv/bin/python -m scripts.bench_console --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/bench
    .venv/bin/python -m scripts.bench_console --sqlite-path /tmp/bench.sqlite3 --postgres-url URL --reuse

With --reuse a database that already holds --tickets tickets (a previous run's --sqlite-path, or the database at
--postgres-url) is migrated to the head and timed again without seeding: seeding 200,000 takes minutes.

The seed is bulk Core inserts (the migration's triggers and indexes keep search current as they go): a
year of calls and tickets with a realistic mix (most closed; the last days open in every state; ~3% urgent;
categories weighted to repairs), a message take with a transcript on nine in ten tickets, a correction on some,
notes on a third, rooms over 40 buildings, the tickets spread over 20 properties, a follow-up call (回访) for every
resolved ticket (mostly answered with a score, some unreachable or opted out) and the caller's own score on 30%.
The night-shift member works for the whole company (one night desk for every 小区: it sees all 200,000);
"queue, one property" is its queue narrowed to one of them (?property=). Each page is requested --repeat times;
median and p95 in ms.
Target: median ≤ 100 ms and p95 ≤ 200 ms for every page on both databases.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from ivr import create_app
from ivr.config import load_settings
from ivr.db import Database
from ivr.migrate import upgrade_database
from ivr.models import DEFAULT_PROPERTY_ID, Call, FollowUp, Recording, Ticket, TicketNote, Transcript, User
from ivr.properties import save_property
from ivr.tickets.sla import stamp_clocks

PASSWORD = "night-shift-password-bench"
TARGET_MEDIAN_MS, TARGET_P95_MS = 100.0, 200.0
BATCH = 5000

PHRASES = [
    "楼上漏水了,厨房天花板一直在滴水",
    "电梯困人,请马上派人来",
    "家里停电了,整栋楼都没电",
    "楼道灯坏了好几天了",
    "隔壁装修太吵,晚上十点还在施工",
    "小区门口有车乱停,挡住了消防通道",
    "物业费怎么交,想问一下今年的标准",
    "下水道堵了,卫生间反水",
    "垃圾好几天没人清理,味道很大",
    "门禁卡刷不开,进不了单元门",
    "暖气不热,室温只有十五度",
    "燃气有味道,担心泄漏",
    "绿化带的树枝挡住了窗户",
    "楼下商铺油烟太大",
    "水压太小,热水器打不着火",
]
NOTES = ["已电话联系业主,明早维修", "工程部李工已接单", "业主不在家,约下午上门", "已告知业主处理进度", "需要购买配件"]
STATUSES_CLOSED_MIX = ["closed"] * 97 + ["followed_up"] * 2 + ["replied"]
OPEN_MIX = ["registered"] * 3 + ["dispatched"] * 3 + ["in_progress"] * 2 + ["analysed", "resolved", "replied"]
CATEGORIES = ["repair"] * 55 + ["complaint"] * 20 + ["fee"] * 12 + ["other"] * 10 + ["emergency"] * 3
DEPARTMENTS = ("工程部", "秩序维护部", "环境部", "绿化", "客服部", "财务")
FOLLOW_UP_MIX = ["done"] * 8 + ["unreachable", "opted_out"]  # each resolved ticket's follow-up call (回访)
PROPERTIES = 20  # 小区 of one company, the tickets spread over them (the default property is one of them)


def _rows(count: int, now: datetime, rng: random.Random) -> Iterator[dict[str, Any]]:
    """One ticket's worth of rows at a time, oldest first over a year."""
    start = now - timedelta(days=365)
    per_day: dict[str, int] = {}
    for index in range(count):
        at = start + timedelta(seconds=365 * 86400 * index / count + rng.random() * 60)
        age = now - at
        recent = age < timedelta(days=3)
        status = rng.choice(OPEN_MIX) if recent else rng.choice(STATUSES_CLOSED_MIX)
        category = rng.choice(CATEGORIES)
        day = at.strftime("%Y%m%d")
        per_day[day] = per_day.get(day, 0) + 1
        said = rng.choice(PHRASES) + ("," + rng.choice(PHRASES) if rng.random() < 0.3 else "")
        resolved = (
            at + timedelta(hours=rng.randint(2, 20))
            if status in {"resolved", "replied", "followed_up", "closed"}
            else None
        )
        yield {
            "index": index,
            "at": at,
            "number": f"{day}{per_day[day]:04d}",
            "status": status,
            "category": category,
            "urgent": category == "emergency" or rng.random() < 0.01,
            "room": f"{rng.randint(1, 40)}-{rng.randint(1, 4)}-{rng.randint(1, 30):02d}{rng.randint(1, 4):02d}",
            "caller": f"+86139{rng.randint(0, 99999999):08d}",
            "department": rng.choice(DEPARTMENTS) if status != "registered" else None,
            "resolved_at": resolved,
            "said": said if rng.random() < 0.9 else None,
            "corrected": said.replace("了", "啦") if rng.random() < 0.05 else None,
            "note": rng.choice(NOTES) if rng.random() < 0.33 else None,
            "property_id": DEFAULT_PROPERTY_ID + index % PROPERTIES,
            "call_satisfaction": rng.randint(1, 5) if rng.random() < 0.3 else None,
            "follow_up": rng.choice(FOLLOW_UP_MIX) if resolved is not None else None,
            "score": rng.randint(1, 5),
        }


class _Clock:
    """What stamp_clocks needs of a ticket, for bulk rows (the same function the app stamps with)."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.call = None
        self.property_id = row["property_id"]
        self.created_at = row["at"]
        self.status = row["status"]
        self.resolved_at = row["resolved_at"]


def seed(url: str, count: int) -> float:
    """Create the schema and `count` tickets with bulk Core inserts; returns seconds taken."""
    began = time.perf_counter()
    upgrade_database(url)
    engine = create_engine(url)
    rng = random.Random(11)
    now = datetime.now(UTC)
    rows = _rows(count, now, rng)
    database = Database(url)
    with database.session() as session:
        for number in range(1, PROPERTIES):  # the default property is there already
            save_property(session, f"p{number:02d}", name=f"小区{number:02d}", numbers=(f"+8621600{number:05d}",))
    database.dispose()
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA synchronous=OFF")
        while batch := [row for _, row in zip(range(BATCH), rows, strict=False)]:
            first = batch[0]["index"] + 1
            calls, tickets, takes, transcripts, notes, follow_ups = [], [], [], [], [], []
            for row in batch:
                ident = row["index"] + 1
                calls.append(
                    {
                        "id": ident,
                        "call_sid": f"CA{ident:032d}",
                        "property_id": row["property_id"],
                        "from_number": row["caller"],
                        "status": "completed",
                        "started_at": row["at"],
                        "counters": {},
                        "room_confirmed": True,
                    }
                )
                clock: Any = _Clock(row)
                stamp_clocks(clock)
                tickets.append(
                    {
                        "id": ident,
                        "number": row["number"],
                        "property_id": row["property_id"],
                        "category": row["category"],
                        "status": row["status"],
                        "urgent": row["urgent"],
                        "room": row["room"],
                        "caller_number": row["caller"],
                        "call_id": ident,
                        "confirmed": True,
                        "created_at": row["at"],
                        "department": row["department"],
                        "resolved_at": row["resolved_at"],
                        "major": False,
                        "recovered": False,
                        "call_satisfaction": row["call_satisfaction"],
                        **{
                            name: getattr(clock, name)
                            for name in ("dispatch_due", "resolve_due", "follow_up_due", "sla_due", "sla_warn_at")
                        },
                    }
                )
                if row["said"] is not None:
                    takes.append(
                        {
                            "id": ident,
                            "recording_sid": f"RE{ident:032d}",
                            "call_id": ident,
                            "ticket_id": ident,
                            "source": "message",
                            "state": "stored",
                            "channels": 1,
                            "duration": 8.0,
                            "created_at": row["at"],
                            "needs_manual_transcription": False,
                        }
                    )
                    transcripts.append(
                        {
                            "recording_id": ident,
                            "channel": 0,
                            "text": row["said"],
                            "raw_text": row["said"],
                            "words": [],
                            "created_at": row["at"],
                            "corrected_text": row["corrected"],
                        }
                    )
                if row["follow_up"] is not None:
                    done = row["follow_up"] == "done"
                    follow_ups.append(
                        {
                            "ticket_id": ident,
                            "property_id": row["property_id"],
                            "phone": row["caller"],
                            "state": row["follow_up"],
                            "attempts": 1 if done else 3,
                            "due_at": row["resolved_at"],
                            "resolved": True if done else None,
                            "satisfaction": row["score"] if done else None,
                            "created_at": row["resolved_at"],
                            "updated_at": row["resolved_at"],
                        }
                    )
                if row["note"] is not None:
                    notes.append(
                        {
                            "ticket_id": ident,
                            "at": row["at"],
                            "author": "wang",
                            "told_caller": False,
                            "text": row["note"],
                        }
                    )
            for table, values in (
                (Call, calls),
                (Ticket, tickets),
                (Recording, takes),
                (Transcript, transcripts),
                (TicketNote, notes),
                (FollowUp, follow_ups),
            ):
                if values:
                    connection.execute(insert(table.__table__), values)
            print(f"  seeded {first + len(batch) - 1:>7} tickets ({time.perf_counter() - began:.0f} s)", flush=True)
        if engine.dialect.name == "postgresql":
            for table in ("calls", "tickets", "recordings", "transcripts", "ticket_notes", "follow_ups"):
                connection.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT coalesce(max(id), 1) FROM {table}))"
                    )
                )
            connection.exec_driver_sql("ANALYZE")
        else:
            connection.exec_driver_sql("ANALYZE")
    engine.dispose()
    return time.perf_counter() - began


def seeded_count(url: str) -> int | None:
    """How many tickets the database holds already (None: no schema yet)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(Ticket.__table__))
    except (OperationalError, ProgrammingError):
        return None
    finally:
        engine.dispose()


@contextmanager
def logged_in_client(url: str, instance: Path) -> Iterator[Any]:
    environ = {
        "IVR_ENV": "test",
        "IVR_DATABASE_URL": url,
        "IVR_INSTANCE_DIR": str(instance),
        "IVR_RECORDINGS_DIR": str(instance / "recordings"),
        "IVR_PUBLIC_URL": "https://ivr.example.test",
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "bench-auth-token-0123456789abcdef",
        "IVR_SECRET_KEY": "bench-secret-key-" + "x" * 32,
    }
    app = create_app(load_settings(environ), with_queue=False)
    from ivr.runtime import current_database
    from ivr.staff import create_user

    with app.app_context(), current_database().session() as session:
        if session.scalar(select(User).where(User.username == "bench-night")) is None:  # a reused database has one
            create_user(session, "bench-night", PASSWORD, "night_shift", display_name="值班")
    client = app.test_client()
    page = client.get("/console/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token, page
    answer = client.post(
        "/console/login", data={"username": "bench-night", "password": PASSWORD, "csrf_token": token.group(1)}
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)
    try:
        yield client
    finally:
        app.extensions["ivr.database"].dispose()


PAGES: list[tuple[str, str]] = [
    ("queue", "/console/"),
    ("queue, one property", "/console/?property=p07"),
    ("queue page 3", "/console/?page=3"),
    ("search 漏水了 (3+)", "/console/?q=漏水了&status=closed"),
    ("search 电梯 (2)", "/console/?q=电梯"),
    ("search 吵 (1)", "/console/?q=吵"),
    ("room filter", "/console/?room=3-2&status=closed"),
    ("overview", "/console/dashboard"),
    ("ticket page", "/console/tickets/{ticket}"),
    ("回访 page (lists)", "/console/follow-ups"),
    ("回访周报 (week, chart)", "/console/follow-ups/report"),
]


def time_pages(client: Any, repeat: int, ticket: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {}
    for name, path in PAGES:
        url = path.format(ticket=ticket)
        assert client.get(url).status_code == 200, url  # warm: templates compiled, statements cached
        samples = []
        for _ in range(repeat):
            began = time.perf_counter()
            response = client.get(url)
            samples.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, url
        timings[name] = samples
        shown = re.search(r"显示第 [^<]*条", response.get_data(as_text=True))
        print(f"    {name:<20} {shown.group(0) if shown else ''}", flush=True)
    return timings


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def run(label: str, url: str, count: int, repeat: int, instance: Path, reuse: bool) -> dict[str, list[float]]:
    if reuse and seeded_count(url) == count:
        upgrade_database(url)
        print(f"{label}: reusing {count} seeded tickets; timing pages ({repeat} requests each)", flush=True)
    else:
        print(f"{label}: seeding {count} tickets", flush=True)
        seconds = seed(url, count)
        print(f"{label}: seeded in {seconds:.0f} s; timing pages ({repeat} requests each)", flush=True)
    with logged_in_client(url, instance) as client:
        return time_pages(client, repeat, ticket=count - 10)


def report(results: dict[str, dict[str, list[float]]]) -> bool:
    met = True
    print(f"\n{'page':<22}" + "".join(f"{label + ' median':>20}{'p95':>8}" for label in results))
    for name, _ in PAGES:
        line = f"{name:<22}"
        for timings in results.values():
            samples = timings[name]
            median, high = statistics.median(samples), p95(samples)
            met = met and median <= TARGET_MEDIAN_MS and high <= TARGET_P95_MS
            line += f"{median:>18.1f}ms{high:>6.0f}ms"
        print(line)
    print(
        f"\ntarget median ≤ {TARGET_MEDIAN_MS:.0f} ms and p95 ≤ {TARGET_P95_MS:.0f} ms: {'met' if met else 'NOT met'}"
    )
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--postgres-url", help="an empty PostgreSQL database (default: a throwaway server)")
    parser.add_argument("--sqlite-path", type=Path, help="the SQLite database file, kept (default: a temporary one)")
    parser.add_argument("--reuse", action="store_true", help="time a database already seeded with --tickets as it is")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="ivr-bench-console-") as folder:
        root = Path(folder)
        if not args.no_sqlite:
            path = args.sqlite_path or root / "bench.sqlite3"
            results["SQLite"] = run(
                "SQLite", f"sqlite:///{path}", args.tickets, args.repeat, root / "sqlite", args.reuse
            )
        if not args.no_postgres:
            runner: Callable[[str], dict[str, list[float]]] = lambda url: run(  # noqa: E731
                "PostgreSQL", url, args.tickets, args.repeat, root / "postgres", args.reuse
            )
            if args.postgres_url:
                results["PostgreSQL"] = runner(args.postgres_url)
            else:
                from ivr.devphone.faults import ThrowawayPostgres

                server = ThrowawayPostgres()
                server.start()
                try:
                    results["PostgreSQL"] = runner(server.url)
                finally:
                    server.remove()  # stopped, and its data (about 1 GB at 200,000 tickets) deleted
    return 0 if report(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
