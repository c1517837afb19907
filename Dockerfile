# One image for both roles: `bodywork workflow ...` (the controller, run as a Job) and
# `bodywork stage ...` (the bootstrapper in every stage pod). Stage code is never baked in:
# it is fetched from Git at the run's pinned commit when the pod starts.
FROM python:3.11-slim

# git + openssh-client fetch project code; tini is PID 1 so SIGTERM reaches the stage
# process and zombies are reaped; no compilers are installed, so none are left behind.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client tini ca-certificates \
 && rm -rf /var/lib/apt/lists/*

COPY pyproject.toml README.md /tmp/bodywork-src/
COPY runner /tmp/bodywork-src/runner
COPY stage-bootstrap /tmp/bodywork-src/stage-bootstrap
RUN python -m pip install --no-cache-dir /tmp/bodywork-src \
 && rm -rf /tmp/bodywork-src /root/.cache

# A fixed non-root UID, so pod specs can say runAsNonRoot and runAsUser: 10001.
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/bodywork bodywork
USER 10001:10001
WORKDIR /home/bodywork
ENV PYTHONUNBUFFERED=1 \
    UV_NO_PROGRESS=1

ENTRYPOINT ["tini", "--", "bodywork"]
CMD ["--help"]
