# One image for every process of the product, chosen by command (docs/deploy.md):
#   web (default)  gunicorn deepfake_site.wsgi --bind 0.0.0.0:8000 ...
#   worker         celery -A deepfake_site worker --loglevel info
#   beat           celery -A deepfake_site beat --loglevel info --schedule /tmp/celerybeat-schedule
#   release        python manage.py migrate --noinput && python manage.py ensure_active_model
#
#   docker build -t deepfake-detector .                                      # CPU PyTorch
#   docker build -t deepfake-detector:gpu --build-arg TORCH_INDEX_URL= .     # PyPI's CUDA PyTorch, for GPU workers

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: every dependency installed into a virtualenv, which is all the runtime stage takes from here ----------
FROM ${PYTHON_IMAGE} AS build

# Where torch and torchvision come from. The CPU index keeps the CUDA libraries (several GB) out of the image.
# Empty: PyPI's default wheels, which on x86_64 are CUDA builds that only need the NVIDIA driver on the host.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv
COPY requirements.txt requirements-no-deps.txt /tmp/
# torch and torchvision first, at the versions requirements.txt pins and without their dependencies: the second
# step then finds them installed (2.14.1+cpu satisfies ==2.14.1) and takes their dependencies from PyPI.
# The grep's output is meant to split into two requirement arguments.
# hadolint ignore=SC2046
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        pip install --no-deps --index-url "$TORCH_INDEX_URL" $(grep -E '^(torch|torchvision)==' /tmp/requirements.txt); \
    fi \
 && pip install -r /tmp/requirements.txt \
 && pip check \
 && pip install --no-deps -r /tmp/requirements-no-deps.txt

# --- runtime ---------------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# Paths are fixed by the image (compose mounts its volumes there); everything else comes from the environment.
# The app user's home is not writable: every library cache points into the model-cache volume.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/app/data \
    MEDIA_ROOT=/app/data/media \
    STATIC_ROOT=/app/staticfiles \
    MODEL_CACHE_DIR=/app/data/cache/models \
    HF_HOME=/app/data/cache/huggingface \
    TORCH_HOME=/app/data/cache/torch \
    XDG_CACHE_HOME=/app/data/cache \
    MPLCONFIGDIR=/app/data/cache/matplotlib \
    WEB_CONCURRENCY=2

RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
# The code stays owned by root, read-only for the app user. A new top-level package must be added here
# (deepfake_site/tests/test_deploy.py checks that every one is).
COPY manage.py ./
COPY deepfake_site/ deepfake_site/
COPY accounts/ accounts/
COPY detection/ detection/
COPY ml/ ml/
COPY models/ models/
COPY templates/ templates/
COPY static/ static/
COPY deploy/healthcheck.py deploy/healthcheck.py

# collectstatic needs production settings but no secret: a throwaway key exists for this one command only.
# DATA_DIR is the only writable place; new named volumes mounted under it inherit its owner.
RUN DEBUG=false SECRET_KEY=build-time-only-collectstatic-key-not-used-at-runtime-0123456789 \
    python manage.py collectstatic --noinput \
 && python -m compileall -q deepfake_site accounts detection ml \
 && mkdir -p /app/data/media /app/data/cache \
 && chown -R app:app /app/data

# Numeric, so orchestrators can verify it is not root (Kubernetes runAsNonRoot).
USER 10001:10001
EXPOSE 8000

# Checks the web process; compose replaces it for workers (celery inspect ping) and turns it off for beat.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["python", "deploy/healthcheck.py"]

# WEB_CONCURRENCY sets gunicorn's worker count; GUNICORN_CMD_ARGS adds any other option.
CMD ["gunicorn", "deepfake_site.wsgi", "--bind", "0.0.0.0:8000", "--access-logfile", "-", "--worker-tmp-dir", "/dev/shm"]
