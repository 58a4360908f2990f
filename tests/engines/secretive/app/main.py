"""An app declaring the secret ENGINE_TOKEN: writes its value's SHA-256 (never the value)
and which RUNNER_* variables it sees (there must be none)."""
import hashlib
import json
import os

token = os.environ["ENGINE_TOKEN"]
seen = sorted(key for key in os.environ if key.startswith("RUNNER_"))
with open(os.path.join(os.environ["TASK_RESULTS_DIR"], "secret.json"), "w") as f:
    json.dump({"sha256": hashlib.sha256(token.encode()).hexdigest(), "runner_vars": seen}, f)
