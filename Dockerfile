# ReleaseGate API and worker: one image, two commands (see docker-compose.yml).
#
#   docker build -t releasegate .
#   docker run releasegate                                   # the API on :8000 (default command)
#   docker run releasegate python -m services.worker         # a worker
#   docker run releasegate python -m services.store.migrate  # migrations (one-shot)

# ---------------------------------------------------------------- builder: the virtualenv
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /app
COPY pyproject.toml README.md ./
COPY services ./services
COPY workflows ./workflows
RUN pip install .

# ---------------------------------------------------------------- runtime: non-root, no tools
FROM python:3.11-slim AS runtime

# The processes run the source in /app, beside alembic.ini, migrations/ and config/, which the
# code finds relative to itself (PROJECT_ROOT in services/settings.py); the venv has the rest.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    RELEASEGATE_DATA_DIR=/tmp/releasegate

RUN groupadd --system --gid 10001 releasegate \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin releasegate \
    && install -d -o 10001 -g 10001 /var/lib/releasegate/checkpoints

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# Owned by root and not writable by the service user: the code cannot be changed at run time.
COPY alembic.ini ./
COPY migrations ./migrations
COPY config ./config
COPY services ./services
COPY workflows ./workflows
# Bytecode made at build time: the code is read-only at run time and the workflow sandbox
# imports workflows/release.py afresh for every run (compiling it each time without this).
RUN python -m compileall -q services workflows

USER 10001:10001
EXPOSE 8000

# The API's liveness; docker-compose.yml gives the worker a check of its own.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]

CMD ["python", "-m", "uvicorn", "--factory", "services.api.app:create_app", \
     "--host", "0.0.0.0", "--port", "8000", "--no-server-header"]
