"""Runner's HTTP API: one FastAPI app, three route families over the same ``Client``.

- ``/v1`` — Runner's own routes (``v1.py``), plus ``/v1/auth/access_token``;
- ``/v1/customer`` — ByteNite's customer API (``bytenite.py``);
- ``/api/v1`` — Prediction-API-style routes (``prediction.py``).

One job, three views: each family maps its concepts onto Runner's own. ``create_app``
lives in ``runner.api.app``; this package imports nothing heavy so that ``runner keys``
works without loading FastAPI.
"""
