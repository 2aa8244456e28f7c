# syntax=docker/dockerfile:1
# lanepaint orchestrator: runs the Flyte DAG driver (workflow_master.py) and `lanepaint run --dry-run`.
# Slim Python, flyte and gcsfs, the project without stage extras: no torch.
#   docker build -t lanepaint-orchestrator:latest .
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LANEPAINT_CACHE_DIR=/cache/lanepaint

WORKDIR /app
COPY constraints.txt ./
COPY requirements/orchestrator.txt requirements/
RUN --mount=type=cache,target=/root/.cache/pip pip install -c constraints.txt -r requirements/orchestrator.txt

# the project: every package and workflow_master.py (.dockerignore keeps tests, docs and caches out)
COPY . .
RUN pip install --no-deps --no-cache-dir . && lanepaint --help > /dev/null

# run as an unprivileged user; /cache and /data belong to it (a named volume keeps that ownership)
RUN useradd --create-home --uid 1000 lanepaint && mkdir -p /cache /data && chown -R lanepaint /cache /data
USER lanepaint

VOLUME ["/cache", "/data"]
# No ENTRYPOINT: Flyte starts its own command in the container.
CMD ["lanepaint", "--help"]
