#!/bin/sh
# The search attributes job (temporalio/admin-tools): registers, as Keyword, the custom search attributes the API
# sets on every gitspace workflow (engine/search-attributes.ts; test/compose.test.ts keeps the two lists equal), so
# the Web UI can filter by them. Only missing ones are created: safe to run again.
set -eu

: "${TEMPORAL_ADDRESS:?set TEMPORAL_ADDRESS}"
: "${TEMPORAL_NAMESPACE:?set TEMPORAL_NAMESPACE}"
: "${GITSPACES_SEARCH_ATTRIBUTES:?set GITSPACES_SEARCH_ATTRIBUTES (comma-separated names)}"

existing="$(temporal operator search-attribute list --address "$TEMPORAL_ADDRESS" --namespace "$TEMPORAL_NAMESPACE")"
for name in $(echo "$GITSPACES_SEARCH_ATTRIBUTES" | tr ',' ' '); do
  if echo "$existing" | grep -qw -- "$name"; then
    echo "search attribute $name exists"
  else
    temporal operator search-attribute create --address "$TEMPORAL_ADDRESS" --namespace "$TEMPORAL_NAMESPACE" \
      --name "$name" --type Keyword
    echo "search attribute $name created"
  fi
done
