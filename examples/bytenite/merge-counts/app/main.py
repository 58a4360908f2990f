"""merge-counts: every chunk's counts.json (flattened to <i>_counts.json) summed into
OUTPUT_DIR/counts.json, most frequent first, and the top 10 in OUTPUT_DIR/top.txt."""
import collections
import json
import os

params = json.loads(os.environ["ASSEMBLER_PARAMS"])
results, output = os.environ["TASK_RESULTS_DIR"], os.environ["OUTPUT_DIR"]
total = collections.Counter()
for name in sorted(os.listdir(results)):
    with open(os.path.join(results, name)) as f:
        total.update(json.load(f))
ranked = sorted(total.items(), key=lambda item: (-item[1], item[0]))
with open(os.path.join(output, "counts.json"), "w") as f:
    json.dump(dict(ranked), f, indent=1)
with open(os.path.join(output, "top.txt"), "w") as f:
    f.writelines(f"{count:8d} {word}\n" for word, count in ranked[: params.get("top", 10)])
print(f"{len(total)} distinct words from {len(os.listdir(results))} chunks")
