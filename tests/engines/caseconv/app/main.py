"""Case-converting app: TASK_DIR/data.bin upper- or lower-cased to TASK_RESULTS_DIR/result.txt.

Test behaviours from APP_PARAMS: `exit` N exits with N after writing to stderr; `spawn`
starts a child process that sleeps; `sleep` seconds before finishing; `pidfile` gets the
pids of this process and its child (so a test can look for them); `log` writes an INFO
and a WARNING line through Python's logging (to stderr, as logging.basicConfig does)."""
import json
import os
import subprocess
import sys
import time

params = json.loads(os.environ["APP_PARAMS"])
piece = os.environ.get("CHUNK_NUMBER", "?")
with open(os.path.join(os.environ["TASK_DIR"], "data.bin"), "rb") as f:
    data = f.read()
print(f"piece {piece}: {len(data)} bytes")
if params.get("log"):
    import logging

    logging.basicConfig(level=logging.INFO)
    logging.getLogger("caseconv").info("converting piece %s", piece)
    logging.getLogger("caseconv").warning("piece %s has no %s", piece, "accents")
pids = [os.getpid()]
if params.get("spawn"):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    pids.append(child.pid)
if params.get("pidfile"):
    with open(f"{params['pidfile']}.{piece}", "w") as f:
        f.write(" ".join(map(str, pids)))
if params.get("exit"):
    for i in range(30):
        print(f"stderr line {i}", file=sys.stderr)
    sys.exit(params["exit"])
time.sleep(params.get("sleep", 0))
text = data.decode()
with open(os.path.join(os.environ["TASK_RESULTS_DIR"], "result.txt"), "w") as f:
    f.write(text.upper() if params.get("mode", "upper") == "upper" else text.lower())
