# syntax=docker/dockerfile:1
# lanepaint orchestrator: runs the Flyte DAG driver (workflow_master.py) and `lanepaint run --dry-run`.
# Slim Python, flyte and gcsfs, the project without stage extras: no torch.
#   docker build -t lanepaint-orchestrator:latest .
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LANEPAINT_CACHE_DIR=/cache/lanepaint

WORKDIR /app
COPY constraints.txt ./
COPY requirements/orchestrator.txt requirements/
RUN pip install -c constraints.txt -r requirements/orchestrator.txt

# the project: every package and workflow_master.py (.dockerignore keeps tests, docs and caches out)
COPY . .
RUN pip install --no-deps . && lanepaint --help > /dev/null

VOLUME ["/cache", "/data"]
# No ENTRYPOINT: Flyte starts its own command in the container.
CMD ["lanepaint", "--help"]
