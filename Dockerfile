# One image for both processes: the API by default, the worker with `python -m worker`
# (docker-compose.yml runs both). Settings come from the environment; see .env.example.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:${PATH}"
WORKDIR /src
COPY . .
# The runtime deps only: the embedded Temporal and PostgreSQL wheels are in the `devstack` extra, which
# the image leaves out (compose runs Temporal and PostgreSQL as services of their own).
RUN pip install .

FROM python:3.11-slim
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
# The code lives in the venv's site-packages; the working folder holds nothing, so no stray .env is read.
WORKDIR /app
USER app
EXPOSE 8000
CMD ["uvicorn", "--factory", "api.main:serve", "--host", "0.0.0.0", "--port", "8000"]
