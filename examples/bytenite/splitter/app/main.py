"""splitter: every source file's lines, `lines_per_chunk` to a chunk (CHUNKS_DIR/data_{i}.bin)."""
import json
import os
import sys

params = json.loads(os.environ["PARTITIONER_PARAMS"])
if "lines_per_chunk" not in params:
    sys.exit("PARTITIONER_PARAMS: lines_per_chunk is required")
step = int(params["lines_per_chunk"])
source, chunks = os.environ["SOURCE_DIR"], os.environ["CHUNKS_DIR"]
index, buffer = 0, []


def flush():
    global index, buffer
    if buffer:
        with open(os.path.join(chunks, f"data_{index}.bin"), "wb") as out:
            out.writelines(buffer)
        index, buffer = index + 1, []


for name in sorted(os.listdir(source)):
    with open(os.path.join(source, name), "rb") as f:
        for line in f:  # streamed: a big source never sits in memory
            buffer.append(line)
            if len(buffer) == step:
                flush()
flush()
print(f"{index} chunks of up to {step} lines")
