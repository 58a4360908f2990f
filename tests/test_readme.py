"""Docs as tests: every Python block of README.md runs as written, in order, on a real
Redis and a real worker — as a new user pasting them would run them.

A block whose first line is ``# NAME.py …`` is a file the README tells the user to
write (``myjobs.py``, ``train.py``): it is written to a folder the worker imports from
(``runner worker --include myjobs,train``). Every other block runs in one Python
session, in the clone's folder (the README's relative paths are the clone's), so a later
block may use an earlier one's ``client``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from runner.local import embedded_redis, worker_process
from tests.cli import REPO

pytestmark = pytest.mark.timeout(240)

FILE_BLOCK = re.compile(r"# (\w+)\.py\b")


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", (REPO / "README.md").read_text(), re.S | re.M)


SESSION = '''
import sys
namespace = {"__name__": "__readme__"}
for number, block in enumerate(BLOCKS, 1):
    print(f"--- block {number}", flush=True)
    exec(compile(block, f"README python block {number}", "exec"), namespace)
print("--- all blocks ran", flush=True)
'''


def test_every_python_block_of_the_readme_runs_as_written(tmp_path: Path) -> None:
    blocks = python_blocks()
    files = {match.group(1): block for block in blocks if (match := FILE_BLOCK.match(block))}
    session = [block for block in blocks if not FILE_BLOCK.match(block)]
    assert {"myjobs", "train"} <= files.keys() and len(session) >= 3
    modules = tmp_path / "modules"
    modules.mkdir()
    for name, code in files.items():
        (modules / f"{name}.py").write_text(code)
    (tmp_path / "redis").mkdir()
    roots = [REPO, tmp_path]
    env = {"RUNNER_FILE_ROOTS": ",".join(map(str, roots)), "RUNNER_ARTIFACTS_URL": (tmp_path / "artifacts").as_uri(),
           "PYTHONPATH": str(modules)}
    with embedded_redis(tmp_path / "redis") as url:
        with worker_process(url, include=sorted(files), env=env, cwd=modules, file_roots=roots, concurrency=2):
            clean = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
            user_env = {**clean, **env, "RUNNER_BROKER_URL": url}
            script = tmp_path / "readme_session.py"
            script.write_text(f"BLOCKS = {session!r}\n{SESSION}")
            done = subprocess.run([sys.executable, str(script)], cwd=REPO, env=user_env, capture_output=True,
                                  text=True, timeout=180)
            assert done.returncode == 0 and "--- all blocks ran" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
            assert done.stdout.count("--- block ") == len(session)
            shell = subprocess.run([sys.executable, "train.py", "--lr", "0.1", "--optimizer.name", "adam"], cwd=modules,
                                   env=user_env, capture_output=True, text=True, timeout=120)
            assert shell.returncode == 0 and '"accuracy": 0.93' in shell.stdout, shell.stdout + shell.stderr
