# syntax=docker/dockerfile:1
# The image the RayJob of deploy/k8s/overlays/ray-extract runs (docs/deploy.md): Ray, poolserve[ray] and the
# shipped models. From the repository root (the build context the root .dockerignore describes):
#   docker build -f deploy/ray.Dockerfile -t poolserve-ray:0.1.0 .
# RAY_IMAGE's Ray must be the RayJob's rayVersion; POOLSERVE_VERSION is pyproject.toml's version.
ARG BASE_IMAGE=python:3.11-slim-bookworm
ARG RAY_IMAGE=rayproject/ray:2.52.0-py311

# ---- poolserve's wheel: the serving code and `poolserve extract`, not the training and export code ----
FROM ${BASE_IMAGE} AS wheel
WORKDIR /src
COPY deploy/requirements-build.lock deploy/
RUN python3 -m venv /opt/build \
 && /opt/build/bin/pip install --no-cache-dir --require-hashes --no-deps -r deploy/requirements-build.lock
COPY pyproject.toml README.m[d] ./
# As in the Dockerfile: the links under poolserve/ to the folders not copied dangle, so setuptools leaves
# them out and the CLI registers only `serve` and `extract`.
COPY poolserve poolserve
COPY repository repository
COPY service service
COPY extract extract
RUN /opt/build/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /dist .

# ---- Ray with poolserve[ray] on top -------------------------------------------------------------------
FROM ${RAY_IMAGE}
ARG POOLSERVE_VERSION=0.1.0
COPY --from=wheel /dist /tmp/dist
RUN pip install --no-cache-dir "/tmp/dist/poolserve-${POOLSERVE_VERSION}-py3-none-any.whl[ray]"
# The wheel holds no models: the shipped ones go to one fixed path, owned by Ray's user (uid 1000, gid 100,
# as the RayJob runs) whatever modes the checkout has. Head and workers run this image, so every node sees
# the same repository at the same path, which the Ray engine needs.
COPY --chown=1000:100 model_repository /opt/poolserve/model_repository
ENV POOLSERVE_REPOSITORY=/opt/poolserve/model_repository
