# The temporal-dsl image: `tdsl worker` by default, and every other `tdsl` command
# (`tdsl db migrate`, `tdsl register`, `tdsl runs` …) with `docker compose run worker tdsl …`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, from pyproject.toml alone: a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The packages, the SQL migrations (schema/migrations, found beside the packages, hence
# the editable install) and the example definitions.
COPY dsl ./dsl
COPY interpreter ./interpreter
COPY activities ./activities
COPY schema ./schema
COPY definitions ./definitions
RUN pip install --no-deps -e . \
    && tdsl --help > /dev/null

RUN useradd --create-home --uid 10001 tdsl
USER tdsl

# TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_TASK_QUEUE and DATABASE_URL come from
# the environment (see docker-compose.yml); SIGTERM drains the worker gracefully.
CMD ["tdsl", "worker"]
