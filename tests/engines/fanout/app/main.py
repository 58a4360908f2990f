"""Fan-out partitioner: every source file's lines, `lines_per_chunk` to a chunk, as
CHUNKS_DIR/data_{i}.bin; `extra` names files written besides them (other names)."""
import json
import os

params = json.loads(os.environ["PARTITIONER_PARAMS"])
if "lines_per_chunk" not in params:
    raise SystemExit("PARTITIONER_PARAMS needs lines_per_chunk")
source, chunks = os.environ["SOURCE_DIR"], os.environ["CHUNKS_DIR"]
lines = []
for name in sorted(os.listdir(source)):
    with open(os.path.join(source, name), "rb") as f:
        lines += f.read().splitlines(keepends=True)
step = int(params["lines_per_chunk"])
count = 0
if step > 0:
    for count, start in enumerate(range(0, len(lines), step), 1):
        with open(os.path.join(chunks, f"data_{count - 1}.bin"), "wb") as f:
            f.write(b"".join(lines[start:start + step]))
for name in params.get("extra", []):
    with open(os.path.join(chunks, name), "wb") as f:
        f.write(name.encode())
print(f"sources: {','.join(sorted(os.listdir(source)))}; chunks: {len(os.listdir(chunks))}")
