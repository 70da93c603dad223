# servicegroup: one image for every command (controller, wrapper, dns, render, ...).
#   docker build -t REGISTRY/servicegroup:0.1.0 .
#   docker run --rm REGISTRY/servicegroup:0.1.0 version
# The base image is pinned to an exact Python release and Debian suite; bump both stages
# together (tests/unit/test_dockerfile.py checks that they match); appending @sha256:DIGEST
# pins the exact image as well.

# ---- build: install the project and its dependencies (from pyproject.toml) into a venv
FROM python:3.11.12-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/servicegroup
WORKDIR /src
COPY pyproject.toml README.md ./
COPY servicegroup ./servicegroup
RUN /opt/servicegroup/bin/pip install --no-compile . \
 && /opt/servicegroup/bin/python -m compileall -q /opt/servicegroup/lib

# ---- runtime: the venv only, no build tools, no source tree, an unprivileged user
FROM python:3.11.12-slim-bookworm
ENV PATH=/opt/servicegroup/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/servicegroup /opt/servicegroup
RUN servicegroup version
# 65532: the conventional "nonroot" UID; the manifests run it with a read-only root filesystem.
USER 65532:65532
ENTRYPOINT ["servicegroup"]
CMD ["--help"]
