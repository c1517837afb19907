#!/usr/bin/env bash
# One-shot set-up of a project in a namespace, then its first run, followed to the end.
#
#   manifests/bootstrap.sh NAMESPACE REPO_URL [BRANCH] [--secret NAME=KEY=VALUE ...]
#                          [--secret-env-file NAME=PATH ...] [--image IMAGE]
#
# Installs the service accounts, Role and RoleBinding (creating the namespace if needed),
# creates or updates the Secrets the project's config.ini files name (values are never
# echoed), starts the run as an in-cluster controller Job, streams its output and exits
# with the run's result. Running it again changes nothing and says so. It is a thin
# wrapper: the work is `bodywork bootstrap` (pip install bodywork), using your kubeconfig.
set -euo pipefail

usage() { sed -n '4,6p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 2 ] || usage
command -v kubectl >/dev/null || { echo "bootstrap: kubectl is not on PATH" >&2; exit 2; }
command -v bodywork >/dev/null || {
  echo "bootstrap: the bodywork CLI is not on PATH (pip install bodywork)" >&2; exit 2; }

namespace=$1 repo=$2
shift 2
branch=()
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then branch=(--branch "$1"); shift; fi

exec bodywork bootstrap --namespace "$namespace" "${branch[@]}" "$@" "$repo"
