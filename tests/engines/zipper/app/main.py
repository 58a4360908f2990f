"""Zip assembler: every file of TASK_RESULTS_DIR into OUTPUT_DIR/<ASSEMBLER_PARAMS.name>,
by name, with fixed timestamps (the same inputs always make the same bytes)."""
import json
import os
import zipfile

params = json.loads(os.environ["ASSEMBLER_PARAMS"])
results, output = os.environ["TASK_RESULTS_DIR"], os.environ["OUTPUT_DIR"]
with zipfile.ZipFile(os.path.join(output, params.get("name", "results.zip")), "w") as archive:
    for name in sorted(os.listdir(results)):
        with open(os.path.join(results, name), "rb") as f:
            archive.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), f.read())
print(f"zipped {len(os.listdir(results))} files")
