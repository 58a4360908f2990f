"""The store is one package that owns Redis: no other product module touches the raw
connection or makes its own client, every Lua script is in one module, each part stays
small, and every name the store had before it was composed still works."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from runner.store import Keys, StatusStore

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parent.parent
PRODUCT = ("runner", "workers", "partitioners", "assemblers")
STORE = REPO / "runner" / "store"

# every public name of StatusStore (and its former bases FleetRecords and Keys) at 26899aa
OLD_NAMES = """add_event add_logs add_metrics add_tasks api_key_key api_link_secret_key api_org_keys_key api_rate_key
api_token_key attempts_key begin_batch broker_queue_key claim_lease close_out count_attempt create deadlines_key
delete_job deliveries_key done_pieces drop_leases events_key failed_key fields forget_deadline forget_worker
from_settings get get_result heartbeat_worker imported_template imports_key iter_results job_key keep_for lease
leases_key list_jobs live_workers load_pieces logs logs_key metrics metrics_key missing_pieces note_piece_seconds
org_jobs_key org_jobs_pattern org_of_jobs_key org_schedules_key overdue page_jobs piece_seconds piece_seconds_key
pieces_key publish_template published_templates ranges_key read_events record_failure record_import record_ranges
record_results renew_leases report reset_failures result_key results_key runs schedule_events_key schedule_jobs_key
schedule_key schedules_checks_key schedules_due_key set_deadline snapshot stale_leases state store_pieces tasks
tasks_key templates_key transition update workers_key prefix url log_max_lines redis""".split()


def product_files(exclude: Path | None = None) -> list[Path]:
    files = [path for package in PRODUCT for path in sorted((REPO / package).rglob("*.py"))]
    return [path for path in files if exclude is None or exclude not in path.parents]


def raw_redis_uses(path: Path) -> list[str]:
    """``x.redis`` attributes and ``*.from_url(...)`` / ``Redis(...)`` clients in ``path``."""
    found, name = [], path.relative_to(REPO) if REPO in path.parents else path.name
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr == "redis":
            found.append(f"{name}:{node.lineno} uses .redis")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                "from_url", "Redis", "StrictRedis"):
            found.append(f"{name}:{node.lineno} makes a Redis client")
    return found


def test_no_module_outside_the_store_touches_the_raw_connection_or_makes_a_client() -> None:
    broken = [use for path in product_files(exclude=STORE) if path.name != "redis_connect.py"
              for use in raw_redis_uses(path)]
    assert broken == []


def test_the_check_sees_a_raw_pipeline_and_a_client(tmp_path: Path) -> None:
    source = tmp_path / "leaky.py"
    source.write_text("import redis\ndef f(store):\n    store.redis.pipeline()\n    redis.Redis.from_url('x')\n")
    assert sorted(use.split(":", 1)[1] for use in raw_redis_uses(source)) == ["3 uses .redis", "4 makes a Redis client"]


def test_only_the_store_builds_keys() -> None:
    builders = {name for name in vars(Keys) if not name.startswith("_")}
    calls = [f"{path.relative_to(REPO)}:{node.lineno} calls {node.func.attr}"
             for path in product_files(exclude=STORE)
             for node in ast.walk(ast.parse(path.read_text(), str(path)))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in builders]
    assert calls == []


def test_every_lua_script_is_in_the_scripts_module() -> None:
    with_lua = {str(path.relative_to(REPO)) for path in product_files() if "redis.call(" in path.read_text()}
    assert with_lua and all(path.startswith("runner/store/scripts/") for path in with_lua), with_lua


def test_every_part_of_the_store_is_under_400_lines() -> None:
    sizes = {path.name: len(path.read_text().splitlines()) for path in STORE.glob("*.py")}
    assert len(sizes) >= 8 and max(sizes.values()) < 400, sizes


def test_every_name_the_store_had_still_works() -> None:
    store = StatusStore("redis://127.0.0.1:1", prefix="p")  # connects lazily: nothing is sent
    missing = [name for name in OLD_NAMES if not hasattr(store, name)]
    assert missing == []
    assert store.job_key("j") == store.keys.job_key("j") == "p:job:j" and store.prefix == "p"
    assert store.create == store.jobs.create and store.lease == store.fleet.lease
    assert store.jobs.redis is store.pieces.redis is store.journal.redis is store.fleet.redis is store.redis
    assert store.api_keys.redis is store.schedules.redis is store.redis  # one connection, shared
