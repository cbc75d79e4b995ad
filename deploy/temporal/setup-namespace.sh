#!/bin/sh
# Once the Temporal server answers: the namespace our workflows run in, and the search
# attributes operators filter on in the UI (contracts/search_attributes.py), all Keyword.
# Idempotent: what exists is kept, so this runs at every `docker compose up`. Needs the
# `temporal` CLI (the temporalio/admin-tools image has it).
set -eu

: "${TEMPORAL_ADDRESS:?set TEMPORAL_ADDRESS (host:port of the frontend)}"
: "${TEMPORAL_NAMESPACE:?set TEMPORAL_NAMESPACE}"
: "${SEARCH_ATTRIBUTES:?set SEARCH_ATTRIBUTES (names, space-separated)}"
RETENTION=${TEMPORAL_RETENTION:-30d}  # how long closed workflows' histories are kept
ATTEMPTS=${SETUP_ATTEMPTS:-60}
PAUSE=${SETUP_PAUSE_SECONDS:-2}

retry() {  # retry WHAT COMMAND...: run COMMAND until it succeeds, at most ATTEMPTS times
  what=$1
  shift
  n=1
  until "$@"; do
    if [ "$n" -ge "$ATTEMPTS" ]; then
      echo "temporal setup: gave up after $n attempts: $what" >&2
      return 1
    fi
    n=$((n + 1))
    sleep "$PAUSE"
  done
}

healthy() {
  temporal operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1
}

namespace_ready() {
  temporal operator namespace describe --namespace "$TEMPORAL_NAMESPACE" --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1 \
    || temporal operator namespace create --namespace "$TEMPORAL_NAMESPACE" --retention "$RETENTION" \
         --address "$TEMPORAL_ADDRESS"
}

has_keyword() {
  temporal operator search-attribute list --namespace "$TEMPORAL_NAMESPACE" --address "$TEMPORAL_ADDRESS" -o json \
    | grep -Eq "\"$1\": *\"INDEXED_VALUE_TYPE_KEYWORD\""
}

keyword_ready() {
  has_keyword "$1" || {
    temporal operator search-attribute create --namespace "$TEMPORAL_NAMESPACE" --name "$1" --type Keyword \
      --address "$TEMPORAL_ADDRESS" >/dev/null && has_keyword "$1"
  }
}

retry "Temporal at $TEMPORAL_ADDRESS is not healthy" healthy
retry "namespace $TEMPORAL_NAMESPACE" namespace_ready
for name in $SEARCH_ATTRIBUTES; do
  retry "search attribute $name (Keyword) in $TEMPORAL_NAMESPACE" keyword_ready "$name"
done
echo "temporal setup: namespace $TEMPORAL_NAMESPACE with search attributes: $SEARCH_ATTRIBUTES"
