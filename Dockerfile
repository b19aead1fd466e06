# syntax=docker/dockerfile:1
# pagestream: one image, the service is chosen by the command, e.g.
#   docker run IMAGE python -m services.ingest | services.cdc | services.ocr | services.persist
#   docker run IMAGE pagestream migrate
#
# Only the runtime dependencies are installed (requirements-runtime.lock, every file checked against
# its sha256 by pip --require-hashes); requirements.lock is the dev/test lock and never enters the image.
# The base image is pinned by digest. To move to a newer python:3.11-slim-bookworm, take the digest of
# its multi-arch index (`docker buildx imagetools inspect python:3.11-slim-bookworm`) and replace it in
# both FROM lines; tests/unit/test_deploy_image.py checks both are pinned and equal.

FROM python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/pagestream
ENV PATH=/opt/pagestream/bin:$PATH
WORKDIR /src
COPY requirements-runtime.lock requirements-build.lock ./
# Binary wheels only, by hash: nothing is compiled, nothing unpinned is fetched.
RUN pip install --require-hashes --no-deps --only-binary=:all: -r requirements-runtime.lock \
 && pip install --require-hashes --no-deps --only-binary=:all: -r requirements-build.lock
COPY pyproject.toml README.md ./
COPY pagestream ./pagestream
COPY services ./services
# The project itself, without resolving dependencies; then the build tools and pip leave the venv.
RUN pip install --no-deps --no-build-isolation . \
 && pip uninstall -y -q setuptools wheel pip

FROM python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b AS runtime
# Tesseract 5 with English and orientation/script detection data.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng tesseract-ocr-osd libpq5 \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 pagestream \
 && useradd --system --uid 10001 --gid pagestream --home-dir /tmp --no-create-home pagestream
COPY --from=build /opt/pagestream /opt/pagestream
ENV PATH=/opt/pagestream/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TESSDATA_PREFIX=/usr/share/tesseract-ocr/5/tessdata \
    OMP_THREAD_LIMIT=1 \
    PAGESTREAM_HTTP_HOST=0.0.0.0
WORKDIR /tmp
USER 10001:10001
EXPOSE 8000 9100
CMD ["python", "-m", "services.ingest"]
