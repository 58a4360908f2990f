# The image every Runner service runs: workers, Flower, and (later) the API.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY runner runner
COPY workers workers
COPY partitioners partitioners
COPY assemblers assemblers
COPY examples examples
RUN pip install . && useradd --create-home --uid 1000 runner && mkdir -p /data /state && chown runner /data /state
USER runner
ENV RUNNER_FILE_ROOTS=/data
CMD ["runner", "worker"]
