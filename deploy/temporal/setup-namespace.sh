#!/bin/sh
# One-shot job (temporalio/admin-tools): creates our namespace with its retention and
# registers the custom search attributes the workflows set. Safe to run again.
#
# Environment:
#   TEMPORAL_ADDRESS    frontend host:port
#   NAMESPACE           namespace to create
#   RETENTION           how long closed workflow histories are kept (e.g. 30d)
#   SEARCH_ATTRIBUTES   space-separated Name=Type pairs (compose takes them from
#                       journeys/domain/search.py; a test keeps the two equal)
set -eu

: "${TEMPORAL_ADDRESS:?}" "${NAMESPACE:?}" "${RETENTION:?}" "${SEARCH_ATTRIBUTES:?}"
ATTEMPTS=${ATTEMPTS:-60}

retry() {
    n=1
    until "$@"; do
        if [ "$n" -ge "$ATTEMPTS" ]; then
            echo "giving up after $ATTEMPTS attempts: $*" >&2
            return 1
        fi
        n=$((n + 1))
        sleep 2  # the server is still starting: poll, not synchronise
    done
}

echo "waiting for Temporal at $TEMPORAL_ADDRESS"
retry temporal operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null

if temporal operator namespace describe --address "$TEMPORAL_ADDRESS" \
        --namespace "$NAMESPACE" >/dev/null 2>&1; then
    echo "namespace $NAMESPACE exists; setting retention to $RETENTION"
    temporal operator namespace update --address "$TEMPORAL_ADDRESS" \
        --namespace "$NAMESPACE" --retention "$RETENTION"
else
    echo "creating namespace $NAMESPACE (retention $RETENTION)"
    temporal operator namespace create --address "$TEMPORAL_ADDRESS" \
        --namespace "$NAMESPACE" --retention "$RETENTION"
fi

existing=$(retry temporal operator search-attribute list --address "$TEMPORAL_ADDRESS" \
    --namespace "$NAMESPACE")
for pair in $SEARCH_ATTRIBUTES; do
    name=${pair%%=*}
    type=${pair#*=}
    if printf '%s\n' "$existing" | grep -Eq "^[[:space:]]*$name[[:space:]]"; then
        echo "search attribute $name exists"
        continue
    fi
    echo "adding search attribute $name ($type)"
    retry temporal operator search-attribute create --address "$TEMPORAL_ADDRESS" \
        --namespace "$NAMESPACE" --name "$name" --type "$type"
done
echo "namespace $NAMESPACE is ready"
