"""The resident registry: phones as the line sees them, the CSV (every bad line by number, all or nothing), the
import replacing a property's registry, and `ivr residents import | list`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from ivr.cli_state import CliState
from ivr.config import Settings
from ivr.db import Database
from ivr.models import DEFAULT_PROPERTY_ID, Resident
from ivr.properties import save_property
from ivr.residents.cli import residents
from ivr.residents.registry import (
    ResidentImportError,
    ResidentRow,
    normalise_phone,
    parse_resident_csv,
    replace_registry,
)

FIXTURES = Path(__file__).parent / "fixtures" / "residents"


def run_residents(settings: Settings, *args: str) -> Result:
    """`ivr residents ARGS...` as a user runs it, then close the engine the command opened."""
    state = CliState(settings)
    try:
        return CliRunner().invoke(residents, list(args), obj=state)
    finally:
        if "database" in vars(state):
            state.database.dispose()


def registry(database: Database, property_id: int = DEFAULT_PROPERTY_ID) -> list[tuple[str, str | None, str]]:
    with database.session() as session:
        rows = session.scalars(select(Resident).where(Resident.property_id == property_id)).all()
        return sorted((r.room, r.name, r.phone) for r in rows)


def problems_of(source: str | bytes) -> list[tuple[int, str]]:
    with pytest.raises(ResidentImportError) as caught:
        parse_resident_csv(source)
    return caught.value.problems


@pytest.fixture
def east(database) -> int:
    with database.session() as session:
        return save_property(session, "east", name="东方花园", numbers=("+862160000001",)).id


# --- phones -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "e164"),
    [
        ("13912345678", "+8613912345678"),
        ("139 1234 5678", "+8613912345678"),
        ("+86 139-1234-5678", "+8613912345678"),
        ("８６１３９１２３４５６７８", "+8613912345678"),  # full-width, as a Chinese IME types it
        ("0086 139 1234 5678", "+8613912345678"),
        ("021-62345678", "+862162345678"),
        ("(021) 6234 5678", "+862162345678"),
        ("+86 21 62345678", "+862162345678"),
        ("010-62345678", "+861062345678"),
        ("0571-8765432", "+865718765432"),
        ("+852 2345 6789", "+85223456789"),  # another country's number is kept as given
    ],
)
def test_phones_are_kept_as_twilio_sends_from(written, e164):
    assert normalise_phone(written) == e164


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("", "phone is empty"),
        ("62345678", "needs its area code, like 021-62345678"),
        ("1391234567", "is not a mobile like 13912345678 or a landline like 021-62345678"),
        ("12345678901", "is not a mobile"),  # no mobile starts 12
        ("4008001234", "is not a mobile"),
        ("110", "is not a mobile"),
        ("+86123", "is not a mobile"),
        ("张伟", "is not a mobile"),
        ("1.39123E+10", "shortened by the spreadsheet"),
    ],
)
def test_what_cannot_be_a_phone_is_refused_saying_why(written, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        normalise_phone(written)


# --- the CSV ------------------------------------------------------------------------------------


def test_a_valid_file_gives_one_resident_per_room_and_phone():
    assert parse_resident_csv((FIXTURES / "valid.csv").read_bytes()) == [
        ResidentRow(2, "3-2-501", "张伟", "+8613912345678"),
        ResidentRow(3, "3-2-501", "李娜", "+8613912345679"),
        ResidentRow(4, "5-1-202", "张伟", "+8613912345678"),
        ResidentRow(5, "12-1-1101", None, "+862162345678"),
    ]


def test_an_excel_gbk_file_with_full_width_digits_and_columns_in_any_order_reads_the_same():
    assert parse_resident_csv((FIXTURES / "excel_gbk.csv").read_bytes()) == [
        ResidentRow(2, "3-2-501", "张伟", "+8613912345678"),
        ResidentRow(3, "3-2-501", "李娜", "+8613912345679"),
    ]


def test_every_bad_line_is_reported_by_its_number():
    assert problems_of((FIXTURES / "bad_rows.csv").read_bytes()) == [
        (3, "room '3-2' is not 楼栋-单元-房号 digits like 3-2-501"),
        (4, "phone '62345678' needs its area code, like 021-62345678"),
        (5, "phone '1391234567' is not a mobile like 13912345678 or a landline like 021-62345678"),
        (6, "phone 'abc' is not a mobile like 13912345678 or a landline like 021-62345678"),
        # line 7 is blank: skipped, still counted
        (8, "duplicate of line 2: 3-2-501 +8613912345678"),
        (
            9,
            "phone '1.39123E+10' was shortened by the spreadsheet: format the column as text, export again",
        ),
        (10, "expected 3 fields, found 2"),
        (11, "room '0-1-101' is not 楼栋-单元-房号 like 3-2-501 (up to 3, 2 and 5 digits, none of them 0)"),
        (12, "phone is empty"),
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", (1, "the file is empty: expected a header room,name,phone")),
        ("room,name,phone\n", (1, "the file has a header but no residents")),
        ("room,phone\n3-2-501,13912345678\n", (1, "header must be room,name,phone (any order): missing name")),
        ("room,name,phone,mobile\n", (1, "header must be room,name,phone (any order): unknown mobile")),
    ],
)
def test_a_file_without_residents_or_with_a_wrong_header_is_refused(text, problem):
    assert problems_of(text) == [problem]


def test_a_name_too_long_for_the_registry_is_a_problem_of_its_line():
    assert problems_of(f"room,name,phone\n3-2-501,{'张' * 65},13912345678\n") == [
        (2, f"name '{'张' * 65}' is longer than 64 characters")
    ]


def test_a_line_with_a_problem_is_not_what_a_later_line_duplicates():
    # Only line 2's own problem: its room and phone were fine, but a refused line is not the one kept.
    assert problems_of(f"room,name,phone\n3-2-501,{'张' * 65},13912345678\n3-2-501,张伟,13912345678\n") == [
        (2, f"name '{'张' * 65}' is longer than 64 characters")
    ]


# --- importing ----------------------------------------------------------------------------------


def test_import_replaces_the_property_registry_with_the_file(settings, database):
    first = run_residents(settings, "import", str(FIXTURES / "valid.csv"), "--property", "default")
    assert first.exit_code == 0, first.output
    assert "now has 4 registered phones (4 new, 0 renamed, 0 unchanged, 0 removed)" in first.output
    again = run_residents(settings, "import", str(FIXTURES / "update.csv"), "--property", "default")
    assert again.exit_code == 0, again.output
    assert "now has 2 registered phones (1 new, 1 renamed, 0 unchanged, 3 removed)" in again.output
    assert registry(database) == [("3-2-501", "张伟伟", "+8613912345678"), ("7-1-701", "陈红", "+8613700000007")]


def test_a_file_with_a_bad_line_imports_nothing_and_lists_every_problem(settings, database):
    assert run_residents(settings, "import", str(FIXTURES / "valid.csv"), "--property", "default").exit_code == 0
    before = registry(database)
    result = run_residents(settings, "import", str(FIXTURES / "bad_rows.csv"), "--property", "default")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == [f"line {n}" for n in (3, 4, 5, 6, 8, 9, 10, 11, 12)]
    assert lines[-1] == "nothing imported"
    assert registry(database) == before  # the good line 2 is not imported either, and nothing is removed


def test_import_goes_to_the_named_property_only_and_needs_one(settings, database, east):
    assert run_residents(settings, "import", str(FIXTURES / "valid.csv"), "--property", "east").exit_code == 0
    assert len(registry(database, east)) == 4 and registry(database) == []
    unnamed = run_residents(settings, "import", str(FIXTURES / "valid.csv"))
    assert unnamed.exit_code != 0 and "Missing option '--property'" in unnamed.output
    unknown = run_residents(settings, "import", str(FIXTURES / "valid.csv"), "--property", "nowhere")
    assert unknown.exit_code != 0 and "no property 'nowhere' (there are: default, east)" in unknown.output


def test_import_help_says_it_replaces_the_property_list():
    text = CliRunner().invoke(residents, ["import", "--help"]).output
    assert "Replace a property's registry" in text and "not in the file are removed" in text


def test_replacing_keeps_unchanged_rows_and_forgets_console_edits(database):
    with database.session() as session:
        session.add(
            Resident(property_id=DEFAULT_PROPERTY_ID, room="9-9-909", phone="+8613600000009", updated_by="admin")
        )
        summary = replace_registry(
            session, DEFAULT_PROPERTY_ID, parse_resident_csv((FIXTURES / "valid.csv").read_bytes())
        )
    assert (summary.added, summary.removed) == (4, 1)
    with database.session() as session:
        again = replace_registry(
            session, DEFAULT_PROPERTY_ID, parse_resident_csv((FIXTURES / "valid.csv").read_bytes())
        )
    assert (again.added, again.renamed, again.unchanged, again.removed) == (0, 0, 4, 0)


def test_list_shows_a_property_registry_in_room_order_and_one_room(settings, database):
    assert run_residents(settings, "import", str(FIXTURES / "valid.csv"), "--property", "default").exit_code == 0
    listed = run_residents(settings, "list")
    assert listed.exit_code == 0, listed.output
    assert [line.split("\t")[:3] for line in listed.stdout.splitlines()] == [
        ["3-2-501", "张伟", "+8613912345678"],
        ["3-2-501", "李娜", "+8613912345679"],
        ["5-1-202", "张伟", "+8613912345678"],
        ["12-1-1101", "-", "+862162345678"],  # 12 after 5, as rooms are counted
    ]
    one = run_residents(settings, "list", "--room", "5-1-202")
    assert one.stdout.splitlines() == ["5-1-202\t张伟\t+8613912345678\timport"]
    bad = run_residents(settings, "list", "--room", "5-1")
    assert bad.exit_code != 0 and "--room" in bad.output
