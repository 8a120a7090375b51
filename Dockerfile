# syntax=docker/dockerfile:1
# kube-autorollout container image: the program in a virtual environment on a slim Python base.
# tests/integration/test_dockerfile_lint.py lints this file; test_image_install.py repeats the builder stage's COPY/ENV/RUN steps
# (apt-get aside) in a temporary directory, so keep those steps plain shell.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
# Compilers only for dependencies without a wheel for the target platform; they stay in this stage.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
ENV VIRTUAL_ENV=/opt/venv
RUN python -m venv "$VIRTUAL_ENV"
ENV PATH="/opt/venv/bin:$PATH"
# Dependencies first, from exact pins (their own layer, rebuilt only when constraints.txt changes).
COPY constraints.txt ./
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --require-virtualenv -r constraints.txt
COPY pyproject.toml README.md ./
COPY autorollout ./autorollout
COPY webhook ./webhook
COPY reconciler ./reconciler
COPY certs ./certs
# The project itself without resolving anything; `pip check` fails when constraints.txt lacks a dependency.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --require-virtualenv --no-deps . \
    && pip check \
    && python -m pip uninstall -y pip setuptools wheel

FROM ${PYTHON_IMAGE}
# A fixed non-root identity (65532, as distroless "nonroot"), and no pip in the final image.
RUN groupadd --system --gid 65532 nonroot \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin nonroot \
    && python -m pip uninstall -y pip setuptools wheel
COPY --from=builder /opt/venv /opt/venv
# Bytecode was compiled at install time; nothing is written outside /tmp at run time (read-only root).
ENV PATH="/opt/venv/bin:$PATH" \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp
USER 65532:65532
WORKDIR /tmp
EXPOSE 8443 8080
ENTRYPOINT ["kube-autorollout"]
CMD ["run"]
