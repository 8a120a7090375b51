# syntax=docker/dockerfile:1
# kube-autorollout container image: the program in a virtual environment on a slim Python base.
# It builds on python:3.11-slim (the default) and on a Debian bookworm root file system with Debian's
# python3 (what tests/harness/image.py builds with buildah here, where Docker Hub is unreachable).
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
# The builder's pip settings arrive as optional build secrets, never as layers: `pip-ca` (a CA bundle,
# where PyPI is reached through a TLS-inspecting proxy) and `pip-conf` (index and proxy settings).
# Dependencies first, from exact pins (their own layer, rebuilt only when constraints.txt changes).
COPY constraints.txt ./
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=secret,id=pip-ca \
    --mount=type=secret,id=pip-conf \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && if [ -s /run/secrets/pip-conf ]; then export PIP_CONFIG_FILE=/run/secrets/pip-conf; fi \
    && pip install --require-virtualenv -r constraints.txt
COPY pyproject.toml README.md ./
COPY autorollout ./autorollout
COPY webhook ./webhook
COPY reconciler ./reconciler
COPY certs ./certs
# The project itself without resolving its dependencies (its build backend comes from the index); `pip check` fails when constraints.txt lacks a dependency.
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=secret,id=pip-ca \
    --mount=type=secret,id=pip-conf \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && if [ -s /run/secrets/pip-conf ]; then export PIP_CONFIG_FILE=/run/secrets/pip-conf; fi \
    && pip install --require-virtualenv --no-deps . \
    && pip check \
    && python -m pip uninstall -y pip setuptools wheel

FROM ${PYTHON_IMAGE}
# A fixed non-root identity (65532, as distroless "nonroot"), and no pip in the final image: the base's
# own pip is removed where it has one (python:3.11-slim; Debian's python3 comes without), and the
# build fails should any pip remain importable.
RUN groupadd --system --gid 65532 nonroot \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin nonroot \
    && if python -m pip --version >/dev/null 2>&1; then python -m pip uninstall -y pip setuptools wheel; fi \
    && ! python -c "import pip" 2>/dev/null
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
