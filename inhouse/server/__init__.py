"""The HTTP server: a REST API, OpenAI-compatible routes and background jobs, over the Python API.

``inhouse serve`` runs :func:`inhouse.server.app.create_app` on uvicorn. Every
route is a thin door over the same functions the CLI calls; the modules split
by resource:

- ``app.py``: the application, limits, docs served offline, lifespan
- ``errors.py``: one error shape, ``{"error", "message", "fix"}``, for every failure
- ``tokens.py`` / ``auth.py``: API tokens (stored hashed) and their roles
- ``jobs.py`` / ``worker.py``: the jobs table, the worker process pool, restart recovery
- ``batching.py``: online classification, micro-batched per model version
- ``routes_*.py``: the REST resources; ``openai.py``: ``/v1``
"""
