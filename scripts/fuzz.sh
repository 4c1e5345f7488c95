#!/usr/bin/env bash
# Runs every fuzz target of the given modules for $FUZZTIME each.
set -euo pipefail
FUZZTIME=${FUZZTIME:-10s}
root=$(pwd)
for m in "$@"; do
	cd "$root/$m"
	for pkg in $(go list ./...); do
		dir=$(go list -f '{{.Dir}}' "$pkg")
		for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
			echo "== fuzz $pkg $target ($FUZZTIME)"
			go test -run='^$' -fuzz="^${target}\$" -fuzztime="$FUZZTIME" "$pkg"
		done
	done
done
