# The project image: the library, the CLI and the functions, with the locked dependencies.
# Used by docker-compose.yml (installer, topology, functions) and by the Message DB installer
# job on Cloud Run. Cloud Functions do not use it: they are built from build/<name>.zip.

# Message DB comes from the npm registry; the installer checks the tarball's pinned integrity.
FROM node:22-bookworm-slim AS message-db
WORKDIR /opt/message-db
RUN npm pack @eventide/message-db@1.3.1 --silent

FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    MESSAGEDB_TARBALL=/opt/message-db/eventide-message-db-1.3.1.tgz \
    MESSAGEDB_AGENT_HOME=/tmp/messagedb-agent
RUN pip install --no-cache-dir "uv==0.13.9"
WORKDIR /app

# Dependencies first, so a source change does not reinstall them.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY shared ./shared
COPY functions ./functions
RUN uv sync --frozen --no-dev --no-editable

COPY --from=message-db /opt/message-db /opt/message-db
RUN useradd --system --uid 10001 --home-dir /tmp app
USER app
CMD ["messagedb-agent", "--help"]
