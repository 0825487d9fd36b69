# The bluegreen Action's image. Released action.yml files point at the pushed digest of this image,
# so users do not build it on every job; `image: Dockerfile` is for the repository's own tests.
# BASE_IMAGE is overridable because the tests build on a machine that cannot pull.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# requirements/build-ca.crt exists only when a test adds its network's CA to a copy of the build
# context (it stays in this stage); on GitHub the folder holds just the lock.
COPY requirements/ /src/requirements/
RUN set -eu; \
    if [ -f /src/requirements/build-ca.crt ]; then export PIP_CERT=/src/requirements/build-ca.crt; fi; \
    python3 -m venv /opt/bluegreen; \
    /opt/bluegreen/bin/pip install --require-hashes --no-deps -r /src/requirements/runtime.txt; \
    /opt/bluegreen/bin/pip uninstall --yes --quiet pip setuptools; \
    /opt/bluegreen/bin/python -m compileall -q -f --invalidation-mode unchecked-hash /opt/bluegreen
# The package sits beside the entrypoint (Python puts the script's folder on sys.path) instead of being
# pip-installed: installing it needs a build backend (setuptools, and wheel for the venv's bundled
# setuptools) that the hash-pinned lock does not hold, and pip's isolated build would fetch an unpinned
# setuptools from PyPI into the image's build.
COPY bluegreen /action/bluegreen
COPY entrypoint.py /action/entrypoint.py
# Bytecode made here, checked against nothing at start: a timestamp pyc whose source's mtime a copy
# changed would be recompiled on every start (PYTHONDONTWRITEBYTECODE below: never saved), and each
# step of the Action is a fresh container (issue 14).
RUN /opt/bluegreen/bin/python -m compileall -q -f --invalidation-mode unchecked-hash /action

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="bluegreen" \
      org.opencontainers.image.description="Blue-green deployments for Kubernetes, as a GitHub Action"
COPY --from=build /opt/bluegreen /opt/bluegreen
COPY --from=build /action /action
ENV PATH=/opt/bluegreen/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# Not root, and uid 1001 exactly: that is the GitHub-hosted runner's user, which creates the files it
# mounts for the step ($GITHUB_OUTPUT, $GITHUB_STEP_SUMMARY) and owns the workspace; they are not
# writable by other users, so this uid can write them and no other non-root uid could
# (tests/action/runner.py makes them so, 0644 and owned by 1001, as the runner's FileCommandManager does). act is laxer: it creates
# those files root-owned but 0666 (seen under act 0.2.89), so any uid passes there. GitHub's docs ask
# Docker actions to run as root for this reason: a self-hosted runner under another uid would fail.
USER 1001
# Exec form, no shell in between: the runner's `docker run` has no --init, so the engine is PID 1 and
# gets the SIGTERM of a cancelled job itself; it installs its own handlers (bluegreen/cancel.py), which
# PID 1 needs: the kernel drops a signal that PID 1 has no handler for.
ENTRYPOINT ["/opt/bluegreen/bin/python", "/action/entrypoint.py"]
