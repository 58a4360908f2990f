"""``runner engine new``: a new engine folder that follows the contract and passes data through.

The entrypoint reads the contract's variables, refuses to run without its params variable
(as ByteNite's boilerplate does, so a misconfigured run fails loudly instead of doing
nothing), and passes data through: the partitioner makes each source file a chunk, the
app copies ``data.bin`` to its results, the assembler copies every result to the output.
A partitioner, app and assembler made so, imported as one template, complete a job.
"""

from __future__ import annotations

import json
from pathlib import Path

from runner.engines.manifest import EngineKind, Manifest
from runner.errors import EngineError

__all__ = ["new_engine"]

_PRELUDE = '''"""{name}: a Runner / ByteNite {kind} engine (made by `runner engine new`)."""
import json
import os
import shutil
import sys


def env(name):
    """A variable of the contract; exits with a message when it is missing."""
    value = os.environ.get(name)
    if value is None:
        sys.exit(f"{{name}} is not set: run this engine through Runner (runner template import)")
    return value


params = json.loads(env("{params}"))
if not isinstance(params, dict):
    sys.exit("{params} must be a JSON object, got " + type(params).__name__)
'''

_BODIES: dict[str, str] = {
    "partitioner": '''
source, chunks = env("SOURCE_DIR"), env("CHUNKS_DIR")
# Each file of the source becomes one chunk (one app task), in name order.
names = sorted(name for name in os.listdir(source) if os.path.isfile(os.path.join(source, name)))
for index, name in enumerate(names):
    shutil.copyfile(os.path.join(source, name), os.path.join(chunks, f"data_{index}.bin"))
print(f"{len(names)} chunks")
''',
    "app": '''
task_dir, results = env("TASK_DIR"), env("TASK_RESULTS_DIR")
# Process one chunk: here, pass it through unchanged.
shutil.copyfile(os.path.join(task_dir, "data.bin"), os.path.join(results, "result.bin"))
print(f"chunk {os.environ.get('CHUNK_NUMBER', '?')}: {os.path.getsize(os.path.join(task_dir, 'data.bin'))} bytes")
''',
    "assembler": '''
results, output = env("TASK_RESULTS_DIR"), env("OUTPUT_DIR")
# Join the results: here, every result file to the output under its own name.
for name in sorted(os.listdir(results)):
    shutil.copyfile(os.path.join(results, name), os.path.join(output, name))
print(f"{len(os.listdir(results))} files assembled")
''',
}

_PARAMS = {"partitioner": "PARTITIONER_PARAMS", "app": "APP_PARAMS", "assembler": "ASSEMBLER_PARAMS"}


def new_engine(name: str, kind: EngineKind, directory: Path) -> Path:
    """Write the engine folder ``directory/name``; returns it. Raises :class:`EngineError`
    for a bad name or kind, or when the folder already exists (nothing is overwritten)."""
    if kind not in _BODIES:
        raise EngineError(f"engine type {kind!r} must be partitioner, app or assembler")
    manifest = {"name": name, "version": "0.1", "type": kind, "entrypoint": "main.py", "platform": "docker",
                "platform_config": {"secrets": []}, "device_requirements": {"min_cpu": 1, "gpu": []}}
    try:
        Manifest.model_validate(manifest)
    except ValueError as exc:
        raise EngineError(f"engine name {name!r}: use letters, digits, '-' or '_', at most 64 characters") from exc
    folder = directory / name
    if folder.exists():
        raise EngineError(f"{folder} already exists; choose another name or --dir")
    (folder / "app").mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    main = folder / "app" / "main.py"
    main.write_text(_PRELUDE.format(name=name, kind=kind, params=_PARAMS[kind]) + _BODIES[kind])
    return folder
