"""The `dutyledger` command line, run as a user would: in a subprocess, configured by environment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from domain.clock import ManualClock
from domain.ledger import Ledger
from projections import VIEWS
from projections.rebuild import new_generation
from projections.store import ViewStore
from projections.views.case_state import CaseStateView
from tests.support import World, build_world


def dutyledger(*args: str, database_url: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DUTYLEDGER_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-c", "from api.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


@pytest.fixture
def populated(database_url: str, clock: ManualClock) -> World:
    ledger = Ledger(database_url, clock=clock)
    world = build_world(ledger, clock)
    case_id = world.accepted()
    world.do(
        world.township_clerk, "record_action", narrative="入户走访，了解诉求", case_id=case_id, kind="visit"
    )
    world.units["case"] = case_id
    ledger.close()
    return world


def test_init_creates_the_store_and_reports_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/new/ledger.sqlite"
    done = dutyledger("init", database_url=url)
    assert done.returncode == 0, done.stderr
    assert "0 events" in done.stdout
    assert (tmp_path / "new" / "ledger.sqlite").exists()


def test_init_with_a_root_unit_founds_the_ledger_once(database_url: str) -> None:
    first = dutyledger("init", "--root-unit", "周口市", database_url=database_url)
    assert first.returncode == 0, first.stderr
    assert "founded" in first.stdout
    again = dutyledger("init", "--root-unit", "周口市", database_url=database_url)
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1
    assert "already established" in again.stderr


def test_case_show_prints_the_full_history_with_names(populated: World, database_url: str) -> None:
    done = dutyledger("case", "show", str(populated.units["case"]), database_url=database_url)
    assert done.returncode == 0, done.stderr
    for event_type in ("Registered", "Accepted", "ActionRecorded"):
        assert event_type in done.stdout
    assert "入户走访，了解诉求" in done.stdout
    assert "信访专干 (汲冢镇)" in done.stdout  # the actor by name, with the unit they served in


def test_case_show_accepts_a_unique_prefix(populated: World, database_url: str) -> None:
    prefix = str(populated.units["case"])[:8]
    done = dutyledger("case", "show", prefix, database_url=database_url)
    assert done.returncode == 0, done.stderr
    assert str(populated.units["case"]) in done.stdout


def test_case_list_gives_one_line_per_case_and_totals(populated: World, database_url: str) -> None:
    done = dutyledger("case", "list", database_url=database_url)
    assert done.returncode == 0, done.stderr
    assert "1 cases: 1 accepted" in done.stdout


def test_events_tail_prints_the_latest_events_in_order(populated: World, database_url: str) -> None:
    done = dutyledger("events", "tail", "-n", "3", database_url=database_url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 3
    assert "Case.ActionRecorded" in lines[-1]
    positions = [int(line.split()[0]) for line in lines]
    assert positions == sorted(positions)


@pytest.mark.parametrize(
    "args",
    [
        ("nope",),
        ("case", "show"),
        ("case", "show", "zz"),
        ("events", "tail", "-n", "many"),
        ("case", "list", "--status", "lost"),
    ],
)
def test_bad_arguments_give_one_line_and_a_non_zero_exit(args: tuple[str, ...], tmp_path: Path) -> None:
    done = dutyledger(*args, database_url=f"sqlite:///{tmp_path}/ledger.sqlite")
    assert done.returncode != 0
    assert done.stderr.startswith("dutyledger: error:")
    assert done.stderr.count("\n") == 1


def test_an_unknown_database_url_is_one_line_without_the_password(tmp_path: Path) -> None:
    done = dutyledger("events", "tail", database_url="mysql://root:secret@localhost/db")
    assert done.returncode == 2
    assert "secret" not in done.stderr
    assert done.stderr.count("\n") == 1


def test_an_unreachable_database_is_one_line_without_the_password() -> None:
    done = dutyledger(
        "projections", "status", database_url="postgresql://ops:secret@127.0.0.1:1/none?connect_timeout=1"
    )
    assert done.returncode == 3
    assert done.stderr.startswith("dutyledger: error: database:")
    assert "secret" not in done.stderr
    assert done.stderr.count("\n") == 1


def test_a_missing_case_is_reported_not_crashed_on(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/l.sqlite"
    assert dutyledger("init", database_url=url).returncode == 0
    done = dutyledger("case", "show", "00000000-0000-0000-0000-000000000000", database_url=url)
    assert done.returncode == 2
    assert "no case" in done.stderr


@pytest.mark.parametrize("command", [("case", "list"), ("projections", "status"), ("keys", "list")])
def test_a_mistyped_ledger_path_is_refused_not_created(tmp_path: Path, command: tuple[str, ...]) -> None:
    """It answered "0 cases" from a new, empty ledger it created, directories and all."""
    missing = tmp_path / "no" / "such" / "ledger.sqlite"
    done = dutyledger(*command, database_url=f"sqlite:///{missing}")
    assert done.returncode == 2
    assert done.stderr.strip() == f"dutyledger: error: no ledger at {missing}: `dutyledger init` creates one"
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize(
    "command",
    [
        (),
        ("init",),
        ("demo",),
        ("case", "show"),
        ("case", "list"),
        ("events", "tail"),
        ("serve",),
        ("projections", "status"),
        ("projections", "run"),
        ("projections", "rebuild"),
        ("projections", "digest"),
    ],
)
def test_every_command_has_help(command: tuple[str, ...], tmp_path: Path) -> None:
    done = dutyledger(*command, "--help", database_url=f"sqlite:///{tmp_path}/l.sqlite")
    assert done.returncode == 0, done.stderr
    assert "Usage" in done.stdout


def test_projections_status_rebuild_and_digest_work_from_the_command_line(
    populated: World, database_url: str
) -> None:
    before = dutyledger("projections", "status", database_url=database_url)
    assert before.returncode == 0, before.stderr
    assert "case_state" in before.stdout
    rebuilt = dutyledger("projections", "rebuild", database_url=database_url)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "case_state: generation" in rebuilt.stdout
    assert "100%" in rebuilt.stdout
    assert "done" in rebuilt.stdout  # the bar's last frame names the stage reached
    status = dutyledger("projections", "status", database_url=database_url)
    assert "lag 0" in status.stdout
    first = dutyledger("projections", "digest", database_url=database_url)
    again = dutyledger("projections", "rebuild", "case_timeline", database_url=database_url)
    assert again.returncode == 0, again.stderr
    second = dutyledger("projections", "digest", database_url=database_url)
    assert first.stdout == second.stdout
    assert "rows 1 " in first.stdout


def test_status_names_a_generation_that_is_not_live_so_an_operator_knows_what_holds_the_disk(
    populated: World, database_url: str
) -> None:
    assert dutyledger("projections", "rebuild", "case_state", database_url=database_url).returncode == 0
    store = ViewStore(database_url)
    left = new_generation(CaseStateView(populated.ledger), store)  # as a rebuild under way, or failed, leaves
    status = dutyledger("projections", "status", database_url=database_url)
    assert status.returncode == 0, status.stderr
    assert (
        f"also generation {left.generation} at position 0, not live: a rebuild under way, or one that failed"
        in status.stdout
    )
    rebuilt = dutyledger("projections", "rebuild", "case_state", database_url=database_url)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "also generation" not in dutyledger("projections", "status", database_url=database_url).stdout


def test_a_rebuild_while_another_process_rebuilds_the_view_is_refused_in_one_line(
    populated: World, database_url: str
) -> None:
    with ViewStore(database_url).rebuild_lock(["case_timeline"]):
        refused = dutyledger("projections", "rebuild", "case_timeline", database_url=database_url)
    assert refused.returncode == 4
    assert refused.stderr.strip().splitlines() == [
        "dutyledger: error: a rebuild of case_timeline is already running; try again once it has finished"
    ]
    after = dutyledger("projections", "rebuild", "case_timeline", database_url=database_url)
    assert after.returncode == 0, after.stderr


def test_a_rebuild_in_shares_from_the_command_line_gives_the_same_digests(
    populated: World, database_url: str
) -> None:
    assert dutyledger("projections", "rebuild", "--shares", "1", database_url=database_url).returncode == 0
    single = dutyledger("projections", "digest", database_url=database_url)
    shared = dutyledger("projections", "rebuild", "--shares", "2", database_url=database_url)
    assert shared.returncode == 0, shared.stderr
    assert dutyledger("projections", "digest", database_url=database_url).stdout == single.stdout


def accountability(
    cadre: str, *extra: str, database_url: str, to: str = "2040-01-01"
) -> subprocess.CompletedProcess[str]:
    return dutyledger(
        "cadre",
        "accountability",
        cadre,
        "--from",
        "2020-01-01",
        "--to",
        to,
        *extra,
        database_url=database_url,
    )


def test_cadre_accountability_prints_what_the_cadre_did_in_the_window(
    populated: World, database_url: str
) -> None:
    cadre = str(populated.township_clerk)
    shown = accountability(cadre, database_url=database_url)
    assert shown.returncode == 0, shown.stderr
    assert "actions 1;" in shown.stdout
    as_json = accountability(cadre, "--json", database_url=database_url)
    assert as_json.returncode == 0, as_json.stderr
    answer = json.loads(as_json.stdout)
    assert (answer["cadre_id"], answer["actions"]) == (cadre, 1)
    assert "actions 0;" in accountability(cadre, database_url=database_url, to="2020-02-01").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("00000000-0000-0000-0000-000000000000",), "no cadre has the id"),
        (("not-an-id",), "is not a cadre id"),
    ],
)
def test_cadre_accountability_of_an_unknown_cadre_is_one_line(
    populated: World, database_url: str, args: tuple[str, ...], message: str
) -> None:
    done = dutyledger(
        "cadre",
        "accountability",
        *args,
        "--from",
        "2020-01-01",
        "--to",
        "2040-01-01",
        database_url=database_url,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_bad_setting_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    env = {**os.environ, "DUTYLEDGER_LATE_RECORD_HOURS": "5"}
    done = subprocess.run(
        [sys.executable, "-c", "from api.cli import main; main()", "projections", "status"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "dutyledger: error: configuration: DUTYLEDGER_LATE_RECORD_HOURS: "
        "Input should be greater than or equal to 24"
    ]


def test_projections_run_follows_the_log_until_stopped(populated: World, database_url: str) -> None:
    env = {**os.environ, "DUTYLEDGER_DATABASE_URL": database_url}
    follower = subprocess.Popen(
        [sys.executable, "-c", "from api.cli import main; main()", "projections", "run", "--poll", "0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and follower.poll() is None:
            status = dutyledger("projections", "status", database_url=database_url)
            if status.stdout.count("lag 0") == len(VIEWS):
                break
            time.sleep(0.5)
    finally:
        follower.send_signal(signal.SIGINT)
        out, err = follower.communicate(timeout=30)
    assert status.stdout.count("lag 0") == len(VIEWS), f"{status.stdout}\nfollower said:\n{out}\n{err}"
    assert "following the log" in out, err


def test_followers_run_side_by_side_from_the_command_line_apply_each_event_once(
    populated: World, database_url: str, clock: ManualClock
) -> None:
    """Two `projections run` processes, one following every view and one two of them, while
    commands are recorded: the views they leave equal a rebuild from the log (same digests)."""
    env = {**os.environ, "DUTYLEDGER_DATABASE_URL": database_url}
    command = [
        sys.executable,
        "-c",
        "from api.cli import main; main()",
        "projections",
        "run",
        "--poll",
        "0.05",
    ]
    followers = [
        subprocess.Popen(
            [*command, *names], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for names in ((), ("case_state", "cadre_accountability"))
    ]
    ledger = Ledger(database_url, clock=clock)
    world = World(ledger, clock, populated.units, populated.cadres)
    try:
        for _ in range(30):
            world.advance(minutes=5)
            world.do(world.township_clerk, "record_action", case_id=world.units["case"], kind="visit")
            time.sleep(0.02)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = dutyledger("projections", "status", database_url=database_url)
            if status.stdout.count("lag 0") == len(VIEWS):
                break
            time.sleep(0.3)
    finally:
        ledger.close()
        for follower in followers:
            follower.send_signal(signal.SIGINT)
        said = [follower.communicate(timeout=30) for follower in followers]
    assert status.stdout.count("lag 0") == len(VIEWS), f"{status.stdout}\nfollowers said:\n{said}"
    followed = dutyledger("projections", "digest", database_url=database_url)
    assert dutyledger("projections", "rebuild", database_url=database_url).returncode == 0
    assert dutyledger("projections", "digest", database_url=database_url).stdout == followed.stdout


def test_the_demo_keeps_its_keys_beside_its_ledger_not_in_the_working_directory(tmp_path: Path) -> None:
    ledger, elsewhere = tmp_path / "ledgers" / "demo.sqlite", tmp_path / "cwd"
    elsewhere.mkdir()
    done = dutyledger("demo", "--quiet", database_url=f"sqlite:///{ledger}", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    kept = ledger.parent / "demo-keys.json"
    assert f"kept in {kept}" in done.stdout
    assert [key["kind"] for key in json.loads(kept.read_text())] == [
        "administrator", "inspector", "cadre", "integrator"
    ]  # fmt: skip
    assert oct(kept.stat().st_mode & 0o777) == "0o600"
    assert not (elsewhere / "var").exists()
