#!/bin/sh
# One-shot job (temporalio/admin-tools): wait for the Temporal frontend, create the namespace if
# it is missing, then register ReleaseGate's custom search attributes that are missing.
# Safe to run on every `docker-compose up`.
set -eu

: "${TEMPORAL_ADDRESS:?TEMPORAL_ADDRESS is required}"
NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
RETENTION="${TEMPORAL_NAMESPACE_RETENTION:-720h}"

# name=type, one per line. Keep in step with workflows/search.py (tests/deploy checks it).
SEARCH_ATTRIBUTES="
UseCaseKey=Keyword
Stage=Keyword
RiskTier=Keyword
BusinessOwner=Keyword
PendingApprovers=KeywordList
GateDueAt=Datetime
"

retry() {
    what="$1"
    shift
    attempt=1
    until "$@" >/dev/null 2>&1; do
        if [ "$attempt" -ge 60 ]; then
            echo "gave up waiting for $what" >&2
            "$@"
            exit 1
        fi
        attempt=$((attempt + 1))
        sleep 2
    done
}

echo "waiting for Temporal at $TEMPORAL_ADDRESS"
retry "the Temporal frontend" temporal operator cluster health

if temporal operator namespace describe --namespace "$NAMESPACE" >/dev/null 2>&1; then
    echo "namespace $NAMESPACE exists"
else
    echo "creating namespace $NAMESPACE (retention $RETENTION)"
    temporal operator namespace create --namespace "$NAMESPACE" --retention "$RETENTION"
fi
# a new namespace takes a moment to reach every frontend's cache
retry "namespace $NAMESPACE" temporal operator search-attribute list --namespace "$NAMESPACE"

existing="$(temporal operator search-attribute list --namespace "$NAMESPACE")"
for pair in $SEARCH_ATTRIBUTES; do
    name="${pair%%=*}"
    type="${pair#*=}"
    if printf '%s\n' "$existing" | awk '{ print $1 }' | grep -qx -- "$name"; then
        echo "search attribute $name exists"
    else
        echo "creating search attribute $name ($type)"
        temporal operator search-attribute create --namespace "$NAMESPACE" \
            --name "$name" --type "$type"
    fi
done
echo "namespace $NAMESPACE is ready for ReleaseGate"
