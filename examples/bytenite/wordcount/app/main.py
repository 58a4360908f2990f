"""wordcount: the words of one chunk (TASK_DIR/data.bin) counted into TASK_RESULTS_DIR/counts.json."""
import collections
import json
import os

params = json.loads(os.environ["APP_PARAMS"])
with open(os.path.join(os.environ["TASK_DIR"], "data.bin"), encoding="utf-8") as f:
    text = f.read()
if params.get("lowercase", True):
    text = text.lower()
counts = collections.Counter(w for w in text.split() if len(w) >= params.get("min_length", 1))
with open(os.path.join(os.environ["TASK_RESULTS_DIR"], "counts.json"), "w") as f:
    json.dump(counts, f)
print(f"chunk {os.environ.get('CHUNK_NUMBER')}: {sum(counts.values())} words")
