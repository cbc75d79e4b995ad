# The one image of migrate, worker and api (docker-compose.yml); without a command, the worker.
#
# Stage 1 builds the project's wheel from the build context (.dockerignore keeps .venv, .var,
# .git, tests and caches out); stage 2 installs that wheel and its dependencies and runs as a
# user without privileges. tests/deploy/test_compose.py builds the same wheel from the same
# context and runs every command compose starts from it, outside the source tree.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --home-dir /home/billing --uid 10001 --user-group --shell /usr/sbin/nologin billing
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-cache-dir /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels
USER billing
WORKDIR /home/billing
# Only the embedded stack of `python -m starter run` writes there; the production commands don't.
ENV DATA_DIR=/home/billing/.var
# 8080: the HTTP API (`api`); 9464: the worker's Prometheus metrics (`worker`).
EXPOSE 8080 9464
CMD ["python", "-m", "starter", "worker"]
