# syntax=docker/dockerfile:1
# pagestream: one image, the service is chosen by the command, e.g.
#   docker run IMAGE python -m services.ingest | services.cdc | services.ocr | services.persist
#   docker run IMAGE pagestream migrate

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Headers and compilers for the wheels that may need building (tesserocr against libtesseract).
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config libtesseract-dev libleptonica-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/pagestream
ENV PATH=/opt/pagestream/bin:$PATH
WORKDIR /src
COPY requirements.lock ./
RUN pip install -r requirements.lock
COPY pyproject.toml README.md ./
COPY pagestream ./pagestream
COPY services ./services
RUN pip install --no-deps .

FROM python:3.11-slim-bookworm AS runtime
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
