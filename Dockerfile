# syntax=docker/dockerfile:1
#
# backupbot image: the bot plus pg_dump/pg_restore/psql for PostgreSQL 13-17 and zstd.
#
#   docker build -t backupbot .
#   docker run --env-file backupbot.env -p 3000:3000 backupbot             # HTTP mode
#   docker run --env-file backupbot.env -e SLACK_APP_TOKEN=xapp-... backupbot  # Socket Mode
#
# Client binaries live in /usr/lib/postgresql/<major>/bin/ (pg_dump, pg_restore, psql);
# /usr/bin/pg_dump is Debian's wrapper that picks the newest installed major.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# --- Stage 1: fetch and verify the PostgreSQL apt repository signing key -------------
FROM ${PYTHON_IMAGE} AS pgdg-key
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# https://www.postgresql.org/download/linux/debian/ - key ACCC4CF8, full fingerprint:
ARG PGDG_KEY_URL=https://www.postgresql.org/media/keys/ACCC4CF8.asc
ARG PGDG_KEY_FINGERPRINT=B97B0AFCAA1A47F044F244A07FCC7D46ACCC4CF8
# gnupg comes from Debian's point-release archive; its version is whatever bookworm
# currently ships, and it never reaches the final image, so it is not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gnupg \
 && rm -rf /var/lib/apt/lists/*
# Download with Python (no curl/wget needed), refuse anything but exactly the expected
# primary key, then dearmor it into a binary keyring for apt's signed-by.
RUN python -c 'import sys, urllib.request; sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1], timeout=60).read())' \
        "${PGDG_KEY_URL}" > /tmp/pgdg.asc \
 && fingerprints="$(gpg --batch --show-keys --with-colons /tmp/pgdg.asc \
        | awk -F: '$1 == "pub" { want = 1; next } $1 == "fpr" && want { print $10; want = 0 }')" \
 && if [ "${fingerprints}" != "${PGDG_KEY_FINGERPRINT}" ]; then \
        echo "unexpected PGDG signing key(s): ${fingerprints:-none}" >&2; exit 1; \
    fi \
 && gpg --batch --dearmor --output /postgresql-archive-keyring.gpg /tmp/pgdg.asc

# --- Stage 2: build the project into a self-contained virtualenv ---------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY backupbot ./backupbot
RUN /opt/venv/bin/pip install --no-cache-dir .

# --- Stage 3: runtime -----------------------------------------------------------------
FROM ${PYTHON_IMAGE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH="/opt/venv/bin:${PATH}"

COPY --from=pgdg-key /postgresql-archive-keyring.gpg /usr/share/keyrings/postgresql-archive-keyring.gpg

# postgresql-client-NN come from apt.postgresql.org, a rolling repository that keeps
# only the latest minor release of each major, so exact version pins would break the
# build at the next minor release; the major is pinned by the package name instead.
# zstd is from Debian bookworm (same reasoning as gnupg above).
# hadolint ignore=DL3008
RUN . /etc/os-release \
 && echo "deb [signed-by=/usr/share/keyrings/postgresql-archive-keyring.gpg] https://apt.postgresql.org/pub/repos/apt ${VERSION_CODENAME}-pgdg main" \
        > /etc/apt/sources.list.d/pgdg.list \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
        postgresql-client-13 \
        postgresql-client-14 \
        postgresql-client-15 \
        postgresql-client-16 \
        postgresql-client-17 \
        zstd \
 && rm -rf /var/lib/apt/lists/* \
 && for major in 13 14 15 16 17; do \
        "/usr/lib/postgresql/${major}/bin/pg_dump" --version || exit 1; \
    done \
 && zstd --version

RUN groupadd --system --gid 10001 backupbot \
 && useradd --system --uid 10001 --gid backupbot --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin backupbot \
 && install -d -o backupbot -g backupbot -m 0750 /app

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
# Numeric uid:gid of `backupbot`, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001

EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["backupbot"]
CMD ["serve", "--port", "3000"]
