# syntax=docker/dockerfile:1
# poolserve images (docs/deploy.md). Default target `runtime`: CPU, onnxruntime, Python 3.11.
#   docker build -t poolserve:cpu .
#   docker build --target gpu -t poolserve:gpu .      # onnxruntime-gpu on CUDA 13 + cuDNN 9
#   docker build --target loadtest -t poolserve-loadtest .   # locust load generator
# Dependencies come only from the hashed locks in deploy/ (regenerate with deploy/lock-runtime.sh).
# No registry here? deploy/podman-host.sh builds a Debian bookworm base: --build-arg BASE_IMAGE=localhost/bookworm-python:latest
ARG BASE_IMAGE=python:3.11-slim-bookworm
ARG GPU_BASE_IMAGE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04

# ---- poolserve's own pure-Python wheel (works for both Pythons) -----------------------------------
FROM ${BASE_IMAGE} AS wheel
WORKDIR /src
COPY deploy/requirements-build.lock deploy/
RUN python3 -m venv /opt/build \
 && /opt/build/bin/pip install --no-cache-dir --require-hashes --no-deps -r deploy/requirements-build.lock
COPY pyproject.toml README.m[d] ./
# Only what serving imports goes into the image's wheel. poolserve/ links its subpackages to the top-level
# folders; the links to models/, export/, extract/ and loadtests/ (torch, export and batch-job code) dangle
# here, so setuptools leaves them out and the CLI registers only the commands whose code is installed.
COPY poolserve poolserve
COPY repository repository
COPY service service
RUN /opt/build/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /dist .

# ---- the shipped models, readable by the unprivileged user whatever modes the checkout has -----------
FROM ${BASE_IMAGE} AS model-repository
COPY model_repository /app/model_repository
RUN chmod -R u=rwX,go=rX /app/model_repository

# ---- CPU: serving venv from the lock -----------------------------------------------------------------
FROM ${BASE_IMAGE} AS venv
COPY deploy/requirements-runtime.lock /tmp/
# Binary wheels only: no compiler in any stage. The lock layer stays cached while only our code changes.
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --require-hashes --no-deps --only-binary=:all: -r /tmp/requirements-runtime.lock
COPY --from=wheel /dist /dist
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps /dist/*.whl \
 && /opt/venv/bin/pip uninstall --yes --quiet pip setuptools

# ---- GPU: Python 3.12 from Ubuntu 24.04 on NVIDIA's CUDA 13 + cuDNN 9 runtime ---------------------
FROM ${GPU_BASE_IMAGE} AS gpu-python
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*

FROM gpu-python AS gpu-venv
COPY deploy/requirements-runtime-gpu.lock /tmp/
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --require-hashes --no-deps --only-binary=:all: -r /tmp/requirements-runtime-gpu.lock
COPY --from=wheel /dist /dist
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps /dist/*.whl \
 && /opt/venv/bin/pip uninstall --yes --quiet pip

FROM gpu-python AS gpu
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin poolserve
COPY --from=gpu-venv /opt/venv /opt/venv
WORKDIR /app
COPY --from=model-repository /app/model_repository model_repository
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    POOLSERVE_REPOSITORY=/app/model_repository \
    POOLSERVE_EXECUTION_PROVIDER=cuda
USER 10001:10001
EXPOSE 8000
# SIGTERM: the supervisor closes the socket, the server drains in-flight requests (25 s at most, inside
# compose's 30 s grace) and exits 0 (70 when it had to abandon an inference that never returned).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 CMD ["python3", "-m", "poolserve.service.healthcheck"]
# The supervisor `poolserve serve` runs, without the CLI (the serving processes import only service/): it
# holds the socket and restarts the server process whenever it dies (a native crash, a stalled inference;
# docs/limits.md), so the container outlives those; compose's `restart:` covers the supervisor itself.
# Settings: POOLSERVE_* (docs/api.md); the healthcheck probes 127.0.0.1:8000, the bind below.
ENV POOLSERVE_HOST=0.0.0.0 \
    POOLSERVE_PORT=8000 \
    POOLSERVE_SHUTDOWN_GRACE_S=25
CMD ["python3", "-m", "poolserve.service.supervisor"]

# ---- load generator: locust + loadtests/ + sample images (compose profile `loadtest`) --------------
FROM ${BASE_IMAGE} AS loadtest
COPY deploy/requirements-loadtest.lock /tmp/
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --require-hashes --no-deps --only-binary=:all: -r /tmp/requirements-loadtest.lock \
 && useradd --system --uid 10001 --user-group --create-home --shell /usr/sbin/nologin poolserve
WORKDIR /app
# The load generator needs only its own package (and the sample images), as poolserve.loadtests.
COPY poolserve/__init__.py poolserve/
COPY loadtests poolserve/loadtests
COPY tests/data tests/data
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1
USER 10001:10001
ENTRYPOINT ["python3", "-m", "poolserve.loadtests"]
CMD ["run", "--host", "http://api:8000", "--output-dir", "runs"]

# ---- CPU runtime: the default target, last so that a plain `docker build .` builds it -------------
FROM ${BASE_IMAGE} AS runtime
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin poolserve
COPY --from=venv /opt/venv /opt/venv
WORKDIR /app
COPY --from=model-repository /app/model_repository model_repository
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    POOLSERVE_REPOSITORY=/app/model_repository
USER 10001:10001
EXPOSE 8000
# SIGTERM: the supervisor closes the socket, the server drains in-flight requests (25 s at most, inside
# compose's 30 s grace) and exits 0 (70 when it had to abandon an inference that never returned).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 CMD ["python3", "-m", "poolserve.service.healthcheck"]
# The supervisor `poolserve serve` runs, without the CLI (the serving processes import only service/): it
# holds the socket and restarts the server process whenever it dies (a native crash, a stalled inference;
# docs/limits.md), so the container outlives those; compose's `restart:` covers the supervisor itself.
# Settings: POOLSERVE_* (docs/api.md); the healthcheck probes 127.0.0.1:8000, the bind below.
ENV POOLSERVE_HOST=0.0.0.0 \
    POOLSERVE_PORT=8000 \
    POOLSERVE_SHUTDOWN_GRACE_S=25
CMD ["python3", "-m", "poolserve.service.supervisor"]
