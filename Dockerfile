# The promptops gateway (HTTP/OpenAI API + UI) for docker-compose.yml: everything is installed at
# build time; the container only runs `promptops serve` against an external Triton (--triton-url).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADIO_ANALYTICS_ENABLED=False

# git: the prompt store; ssh-keygen (openssh-client): verifying SSH-signed approvals.
# safe.directory: the repository is bind-mounted and owned by the host's user, not root;
# without it git refuses every command ("detected dubious ownership").
RUN apt-get update \
    && apt-get install -y --no-install-recommends git openssh-client \
    && rm -rf /var/lib/apt/lists/* \
    && git config --system --add safe.directory '*'

WORKDIR /src
COPY pyproject.toml README.md ./
COPY promptops ./promptops
COPY gateway ./gateway
RUN pip install ".[serve]" && rm -rf /src

# The served repository is mounted here (docker-compose.yml); `promptops` finds it from the working directory.
WORKDIR /repo
EXPOSE 7070
CMD ["promptops", "serve", "--host", "0.0.0.0", "--port", "7070", "--triton-url", "triton:8001"]
