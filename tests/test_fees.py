"""The fee ledger: CSV parsing, upsert import, the `ivr fees` commands, balances and spoken amounts."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from ivr.cli import main
from ivr.cli_state import CliState
from ivr.config import Settings
from ivr.db import Database
from ivr.fees.ledger import (
    FeeImportError,
    FeeRow,
    ImportSummary,
    OwedLine,
    format_amount_cn,
    format_date_cn,
    import_fee_rows,
    normalise_room,
    parse_fee_csv,
    room_balance,
)
from ivr.models import FeeItem

FIXTURES = Path(__file__).parent / "fixtures" / "fees"
HEADER = "room,fee_type,period,amount_due,due_date\n"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def problems_of(source: str | bytes) -> list[tuple[int, str]]:
    with pytest.raises(FeeImportError) as caught:
        parse_fee_csv(source)
    return caught.value.problems


def ledger(database: Database) -> list[tuple[str, str, str, Decimal, date]]:
    """Every ledger line, sorted in Python so the order is the same on SQLite and PostgreSQL."""
    with database.session() as session:
        items = session.scalars(select(FeeItem)).all()
        return sorted((i.room, i.fee_type, i.period, i.amount_due, i.due_date) for i in items)


def run_cli(settings: Settings, *args: str) -> Result:
    """Run `ivr ARGS...` as a user would, then close the engine the command opened."""
    state = CliState(settings)
    try:
        return CliRunner().invoke(main, list(args), obj=state)
    finally:
        # CliState opens its Database lazily and never closes it; an unclosed PostgreSQL connection
        # is a ResourceWarning, which the suite turns into an error.
        if "database" in vars(state):
            state.database.dispose()


# --- parsing ------------------------------------------------------------------------------------


def test_parse_valid_file() -> None:
    rows = parse_fee_csv(fixture_bytes("valid.csv"))

    assert rows == [
        FeeRow(2, "3-2-501", "物业费", "2026-10", Decimal("356.50"), date(2026, 10, 31)),
        FeeRow(3, "3-2-501", "水费", "2026-10", Decimal("42.30"), date(2026, 11, 15)),
        FeeRow(4, "3-2-501", "停车费", "2026年第四季度", Decimal("1200.00"), date(2026, 10, 15)),
        FeeRow(5, "3-2-502", "物业费", "2026-10", Decimal("0.00"), date(2026, 10, 31)),
        # line 6 is blank and skipped, but still counted, as a spreadsheet shows it
        FeeRow(7, "12-1-1101", "供暖费", "2026-2027采暖季", Decimal("2680.00"), date(2026, 11, 30)),
    ]


def test_parse_accepts_text_and_streams_alike() -> None:
    text = (FIXTURES / "valid.csv").read_text(encoding="utf-8")
    expected = parse_fee_csv(fixture_bytes("valid.csv"))

    assert parse_fee_csv(text) == expected
    assert parse_fee_csv(io.StringIO(text)) == expected
    assert parse_fee_csv(io.BytesIO(fixture_bytes("valid.csv"))) == expected
    assert parse_fee_csv("\ufeff" + text) == expected  # a BOM left in already-decoded text


def test_every_bad_row_is_reported_with_its_line_number() -> None:
    problems = problems_of(fixture_bytes("bad_rows.csv"))

    assert [line for line, _ in problems] == [3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 16]
    messages = dict(problems[:-1])  # line 16 has two problems, checked below
    assert "'3-2' is not 楼栋-单元-房号" in messages[3]
    assert "'A-2-501' is not 楼栋-单元-房号" in messages[4]
    assert messages[5] == "fee_type is empty"
    assert messages[6] == "period is empty"
    assert messages[7] == "amount_due 'abc' is not a number like 356.50 or 1,200.00"
    assert messages[8] == "amount_due '-3' is negative"
    assert messages[9] == "amount_due '1.234' has more than 2 decimal places"
    assert messages[11] == "due_date '31/10/2026' is not a date like 2026-11-30 or 2026/11/30"
    assert messages[12] == "due_date '2026-02-30' is not a real date"
    assert messages[13] == "duplicate of line 2: 3-2-501 物业费 2026-10"
    assert messages[14] == "expected 5 fields, found 4"
    assert "is longer than 32 characters" in messages[15]
    assert problems[-2:] == [(16, "amount_due is empty"), (16, "due_date is empty")]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", (1, "the file is empty: expected a header room,fee_type,period,amount_due,due_date")),
        (HEADER, (1, "the file has a header but no fee lines")),
        (HEADER + "\n,,,,\n", (1, "the file has a header but no fee lines")),
        (
            "3-2-501,物业费,2026-10,356.50,2026-10-31\n",
            (
                1,
                "header must be room,fee_type,period,amount_due,due_date (any order): "
                "missing room, fee_type, period, amount_due, due_date; "
                "unknown 3-2-501, 物业费, 2026-10, 356.50, 2026-10-31",
            ),
        ),
        (
            "room,fee,period,amount_due,due_date,note\n3-2-501,物业费,2026-10,356.50,2026-10-31,\n",
            (
                1,
                "header must be room,fee_type,period,amount_due,due_date (any order): "
                "missing fee_type; unknown fee, note",
            ),
        ),
        (
            "room,room,fee_type,period,amount_due,due_date\n",
            (1, "header must be room,fee_type,period,amount_due,due_date (any order): repeated room"),
        ),
    ],
    ids=["empty", "header-only", "header-and-blank-rows", "no-header", "unknown-column", "repeated-column"],
)
def test_file_level_problems_are_on_line_1(text: str, problem: tuple[int, str]) -> None:
    assert problems_of(text) == [problem]


def test_header_columns_may_come_in_any_order_and_case() -> None:
    rows = parse_fee_csv(" Due_Date ,ROOM,fee_type,amount_due,period\n2026-10-31,3-2-501,物业费,356.5,2026-10\n")

    assert rows == [FeeRow(2, "3-2-501", "物业费", "2026-10", Decimal("356.50"), date(2026, 10, 31))]


def test_excel_utf8_export_with_bom_and_trailing_comma_rows() -> None:
    raw = fixture_bytes("excel_utf8_bom.csv")
    assert raw.startswith(b"\xef\xbb\xbf")

    rows = parse_fee_csv(raw)

    assert rows == [
        FeeRow(2, "3-2-501", "物业费", "2026-10", Decimal("356.50"), date(2026, 10, 31)),
        FeeRow(3, "3-2-501", "能源费", "2026-10", Decimal("12.05"), date(2026, 11, 15)),
    ]


def test_gb18030_bytes_are_decoded_after_utf8_fails() -> None:
    raw = fixture_bytes("excel_gbk.csv")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # the fixture really is GBK, so this exercises the fallback

    rows = parse_fee_csv(raw)

    assert rows == [
        FeeRow(2, "5-1-301", "供暖费", "2026年第四季度", Decimal("2680.00"), date(2026, 11, 30)),
        FeeRow(3, "5-1-301", "物业费", "2026-10", Decimal("298.00"), date(2026, 10, 31)),
    ]


def test_bytes_that_are_no_known_encoding_are_a_problem() -> None:
    assert problems_of(b"\xff\xfe\x00r\x00o") == [(1, "the file is neither UTF-8 nor GBK/GB18030 text")]


def test_full_width_input_is_normalised() -> None:
    rows = parse_fee_csv(fixture_bytes("fullwidth.csv"))

    assert rows == [
        FeeRow(2, "3-2-501", "物业费", "2026-10", Decimal("356.50"), date(2026, 10, 31)),
        FeeRow(3, "3-2-502", "水费", "2026-10", Decimal("42.30"), date(2026, 11, 15)),
    ]


@pytest.mark.parametrize(
    ("text", "room"),
    [
        ("3-2-501", "3-2-501"),
        (" 3 - 2 - 501 ", "3-2-501"),
        ("３－２－５０１", "3-2-501"),
        ("12-1-1101", "12-1-1101"),
    ],
)
def test_normalise_room_accepts(text: str, room: str) -> None:
    assert normalise_room(text) == room


@pytest.mark.parametrize(
    "text",
    ["", "3-2", "3-2-501-1", "3_2_501", "3—2—501", "3﹣2﹣501", "A-2-501", "٣-2-501", "3--501", "3-2-501室"],
)
def test_normalise_room_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="is not 楼栋-单元-房号"):
        normalise_room(text)


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("356.5", "356.50"),
        ("356.50", "356.50"),
        ("1,200.00", "1200.00"),
        ("1,234,567.8", "1234567.80"),
        ("0", "0.00"),
        ("1.230", "1.23"),
        ("３５６．５", "356.50"),
    ],
)
def test_amounts_accepted(amount: str, expected: str) -> None:
    rows = parse_fee_csv(f'{HEADER}3-2-501,物业费,2026-10,"{amount}",2026-10-31\n')

    assert str(rows[0].amount_due) == expected


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("abc", "is not a number"),
        ("-3", "is negative"),
        ("1.234", "has more than 2 decimal places"),
        ("1e3", "is not a number"),
        ("12,00.00", "is not a number"),
        ("¥356", "is not a number"),
        ("NaN", "is not a number"),
        ("10000000000.00", "is too large"),
    ],
)
def test_amounts_rejected(amount: str, message: str) -> None:
    [(line, problem)] = problems_of(f'{HEADER}3-2-501,物业费,2026-10,"{amount}",2026-10-31\n')

    assert line == 2
    assert message in problem


@pytest.mark.parametrize(
    ("text", "day"),
    [("2026-10-31", date(2026, 10, 31)), ("2026/10/31", date(2026, 10, 31)), ("2026/1/5", date(2026, 1, 5))],
)
def test_due_dates_accepted(text: str, day: date) -> None:
    rows = parse_fee_csv(f"{HEADER}3-2-501,物业费,2026-10,1.00,{text}\n")

    assert rows[0].due_date == day


@pytest.mark.parametrize("text", ["2026-10/31", "20261031", "2026-13-01", "26-10-31", "2026年10月31日"])
def test_due_dates_rejected(text: str) -> None:
    [(line, problem)] = problems_of(f"{HEADER}3-2-501,物业费,2026-10,1.00,{text}\n")

    assert line == 2
    assert problem.startswith(f"due_date {text!r} is not")


def test_duplicate_after_normalising_is_caught() -> None:
    problems = problems_of(
        f"{HEADER}3-2-501,物业费,2026-10,1.00,2026-10-31\n３－２－５０１,物业费,２０２６－１０,2.00,2026-10-31\n"
    )

    assert problems == [(3, "duplicate of line 2: 3-2-501 物业费 2026-10")]


def test_quoted_multiline_cell_counts_as_one_spreadsheet_row() -> None:
    problems = problems_of(f'{HEADER}3-2-501,"物业\n费",2026-10,1.00,2026-10-31\n3-2-501,水费,2026-10,x,2026-10-31\n')

    assert problems == [(3, "amount_due 'x' is not a number like 356.50 or 1,200.00")]


# --- importing ----------------------------------------------------------------------------------


def test_import_inserts_then_reimport_updates(database: Database) -> None:
    with database.session() as session:
        first = import_fee_rows(session, parse_fee_csv(fixture_bytes("valid.csv")))
    with database.session() as session:
        again = import_fee_rows(session, parse_fee_csv(fixture_bytes("update.csv")))

    assert first == ImportSummary(inserted=5, updated=0)
    assert again == ImportSummary(inserted=1, updated=1)
    assert ledger(database) == [
        ("12-1-1101", "供暖费", "2026-2027采暖季", Decimal("2680.00"), date(2026, 11, 30)),
        ("3-2-501", "停车费", "2026年第四季度", Decimal("1200.00"), date(2026, 10, 15)),
        ("3-2-501", "水费", "2026-10", Decimal("42.30"), date(2026, 11, 15)),
        ("3-2-501", "物业费", "2026-10", Decimal("400.00"), date(2026, 10, 31)),  # updated, not duplicated
        ("3-2-501", "电费", "2026-10", Decimal("88.88"), date(2026, 11, 15)),
        ("3-2-502", "物业费", "2026-10", Decimal("0.00"), date(2026, 10, 31)),
    ]


def test_import_only_flushes(database: Database) -> None:
    rows = parse_fee_csv(fixture_bytes("valid.csv"))
    session = database.sessionmaker()
    try:
        import_fee_rows(session, rows)
        assert session.scalar(select(func.count()).select_from(FeeItem)) == 5
        session.rollback()
        assert session.scalar(select(func.count()).select_from(FeeItem)) == 0
    finally:
        session.close()


# --- the CLI ------------------------------------------------------------------------------------


def test_cli_import_then_reimport(settings: Settings, database: Database) -> None:
    first = run_cli(settings, "fees", "import", str(FIXTURES / "valid.csv"))
    again = run_cli(settings, "fees", "import", str(FIXTURES / "valid.csv"))

    assert first.exit_code == 0, first.output
    assert first.stdout == "imported 5 lines (5 new, 0 updated)\n"
    assert again.stdout == "imported 5 lines (0 new, 5 updated)\n"
    assert len(ledger(database)) == 5


def test_cli_file_with_one_bad_row_imports_nothing(settings: Settings, database: Database) -> None:
    result = run_cli(settings, "fees", "import", str(FIXTURES / "one_bad_row.csv"))

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == ("line 3: amount_due 'abc' is not a number like 356.50 or 1,200.00\nnothing imported\n")
    assert ledger(database) == []


def test_cli_reports_every_problem(settings: Settings, database: Database) -> None:
    result = run_cli(settings, "fees", "import", str(FIXTURES / "bad_rows.csv"))

    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 15
    assert lines[0].startswith("line 3: room '3-2' is not")
    assert lines[-1] == "nothing imported"
    assert ledger(database) == []


def test_cli_bad_file_leaves_earlier_import_untouched(settings: Settings, database: Database) -> None:
    run_cli(settings, "fees", "import", str(FIXTURES / "valid.csv"))
    before = ledger(database)

    result = run_cli(settings, "fees", "import", str(FIXTURES / "one_bad_row.csv"))

    assert result.exit_code == 1
    assert ledger(database) == before


def test_cli_import_missing_file(settings: Settings, tmp_path: Path) -> None:
    result = run_cli(settings, "fees", "import", str(tmp_path / "nope.csv"))

    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_cli_show_owing_room(settings: Settings, database: Database) -> None:
    run_cli(settings, "fees", "import", str(FIXTURES / "valid.csv"))

    result = run_cli(settings, "fees", "show", "３－２－５０１")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "3-2-501 owes 1,598.80 in total:",
        "  停车费\t2026年第四季度\t    1,200.00\tdue 2026-10-15",
        "  物业费\t2026-10\t      356.50\tdue 2026-10-31",
        "  水费\t2026-10\t       42.30\tdue 2026-11-15",
    ]


def test_cli_show_room_owing_nothing_and_unknown(settings: Settings, database: Database) -> None:
    run_cli(settings, "fees", "import", str(FIXTURES / "valid.csv"))

    nothing = run_cli(settings, "fees", "show", "3-2-502")
    unknown = run_cli(settings, "fees", "show", "9-9-909")
    malformed = run_cli(settings, "fees", "show", "3-2")

    assert (nothing.exit_code, nothing.stdout) == (0, "3-2-502 owes nothing\n")
    assert (unknown.exit_code, unknown.stderr) == (1, "9-9-909: not in the fee ledger\n")
    assert malformed.exit_code == 2
    assert "'3-2' is not 楼栋-单元-房号" in malformed.stderr


# --- balances -----------------------------------------------------------------------------------


def test_room_balance_owing_room(database: Database) -> None:
    with database.session() as session:
        import_fee_rows(session, parse_fee_csv(fixture_bytes("valid.csv")))
    with database.session() as session:
        balance = room_balance(session, "3-2-501")

    assert balance is not None
    assert balance.room == "3-2-501"
    assert balance.lines == (
        OwedLine("停车费", "2026年第四季度", Decimal("1200.00"), date(2026, 10, 15)),
        OwedLine("物业费", "2026-10", Decimal("356.50"), date(2026, 10, 31)),
        OwedLine("水费", "2026-10", Decimal("42.30"), date(2026, 11, 15)),
    )
    assert balance.total == Decimal("1598.80")
    assert not balance.owes_nothing


def test_room_balance_orders_same_due_date_by_fee_type_and_skips_zero_lines(database: Database) -> None:
    with database.session() as session:
        import_fee_rows(
            session,
            parse_fee_csv(
                f"{HEADER}1-1-101,水费,2026-10,10.00,2026-10-31\n1-1-101,电费,2026-10,0.00,2026-10-31\n"
                "1-1-101,停车费,2026-10,150.00,2026-10-31\n"
            ),
        )
        balance = room_balance(session, "1-1-101")

    assert balance is not None
    assert [line.fee_type for line in balance.lines] == ["停车费", "水费"]  # code-point order, as sorted()
    assert balance.total == Decimal("160.00")


def test_room_balance_owes_nothing(database: Database) -> None:
    with database.session() as session:
        import_fee_rows(session, parse_fee_csv(fixture_bytes("valid.csv")))
        balance = room_balance(session, "3-2-502")

    assert balance is not None
    assert balance.lines == ()
    assert balance.total == Decimal("0.00")
    assert balance.owes_nothing


def test_room_balance_unknown_room(database: Database) -> None:
    with database.session() as session:
        import_fee_rows(session, parse_fee_csv(fixture_bytes("valid.csv")))
        assert room_balance(session, "9-9-909") is None
        assert room_balance(session, "not a room") is None


# --- saying amounts and dates ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "spoken"),
    [
        ("356.50", "三百五十六元五角"),
        ("356.5", "三百五十六元五角"),
        ("1200", "一千二百元"),
        ("1200.00", "一千二百元"),
        ("0.05", "五分"),
        ("0.50", "五角"),
        ("0.55", "五角五分"),
        ("10.07", "十元零七分"),
        ("10.70", "十元七角"),
        ("10", "十元"),
        ("110", "一百一十元"),
        ("1005.05", "一千零五元零五分"),
        ("100010", "十万零一十元"),
        ("2680", "二千六百八十元"),
        ("0", "零元"),
        ("0.00", "零元"),
        ("1.230", "一元二角三分"),
    ],
)
def test_format_amount_cn(amount: str, spoken: str) -> None:
    assert format_amount_cn(Decimal(amount)) == spoken


@pytest.mark.parametrize("amount", ["-1", "1.234", "NaN", "Infinity"])
def test_format_amount_cn_refuses(amount: str) -> None:
    with pytest.raises(ValueError, match="amount"):
        format_amount_cn(Decimal(amount))


@pytest.mark.parametrize(
    ("day", "written"),
    [
        (date(2026, 11, 30), "2026年11月30日"),
        (date(2026, 1, 5), "2026年1月5日"),
        (date(2027, 12, 31), "2027年12月31日"),
    ],
)
def test_format_date_cn(day: date, written: str) -> None:
    assert format_date_cn(day) == written
