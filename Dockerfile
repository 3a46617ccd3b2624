# Sluice's image: one image for every role of the distributed topology (gateway, worker,
# migrations), running as a non-root user, with the triage app and its trained models and
# index baked in. deploy/compose.yaml runs it; docs/deploy.md explains the roles.
#
#   docker build -t sluice .                       # the reference app, every extra
#   docker build --build-arg EXTRAS=postgres,redis -t sluice-core .   # no models, no torch
ARG PYTHON=3.11

# --- build: a virtualenv with Sluice and its pinned dependencies, then the app's models ---
FROM python:${PYTHON}-slim AS build
ARG EXTRAS=all
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1
WORKDIR /src
RUN python -m venv /opt/sluice
# torch first, pinned to its CPU build: an unpinned torch would pull a multi-gigabyte CUDA build.
RUN case ",${EXTRAS}," in *,all,*|*,models,*) \
        /opt/sluice/bin/pip install torch==2.13.0 \
            --index-url https://download.pytorch.org/whl/cpu ;; esac
COPY requirements/constraints.txt requirements/constraints.txt
COPY pyproject.toml README.md LICENSE ./
COPY src src
COPY examples examples
# The wheel, with the lock's pins as constraints: the versions CI tested, and nothing of the
# development tools.
RUN /opt/sluice/bin/pip wheel --no-deps -w /dist . \
 && /opt/sluice/bin/pip install -c requirements/constraints.txt "$(ls /dist/sluicegate-*.whl)[${EXTRAS}]"
# The app the image serves: the triage example, its models trained and its index built once,
# here, so that no process trains at start.
RUN /opt/sluice/bin/sluice init /srv/app --template triage \
 && if /opt/sluice/bin/python -c "import torch" 2>/dev/null; then \
        /opt/sluice/bin/sluice train /srv/app --quiet \
     && /opt/sluice/bin/sluice index build /srv/app --quiet ; fi

# --- runtime: the virtualenv and the app, nothing else ---
FROM python:${PYTHON}-slim
RUN useradd --system --uid 10001 --user-group --home-dir /srv --no-create-home sluice
COPY --from=build /opt/sluice /opt/sluice
COPY --from=build --chown=sluice:sluice /srv/app /srv/app
ENV PATH=/opt/sluice/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    SLUICE_APP=/srv/app \
    SLUICE_HOST=0.0.0.0 \
    SLUICE_PORT=8000
USER sluice
WORKDIR /srv/app
# 8000: the API of `sluice serve`; 9100: a worker's /metrics and health (SLUICE_METRICS_PORT).
EXPOSE 8000 9100
# The health route of whichever role runs: a worker's metrics port when it has one, else the
# API port.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; p = os.environ.get('SLUICE_METRICS_PORT') or os.environ['SLUICE_PORT']; u.urlopen(f'http://127.0.0.1:{p}/healthz', timeout=2)"]
ENTRYPOINT ["sluice"]
CMD ["serve"]
