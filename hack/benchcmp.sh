#!/usr/bin/env bash
# hack/benchcmp.sh PKG...: the Go benchmarks of PKG... in this tree and at
# $BASE (default HEAD~1, checked out as a git worktree in a temporary
# directory, removed on exit), compared by benchstat.
#
# Each package's test binary is built once per tree; then COUNT rounds run
# every benchmark once in the base tree and once here, taking turns, so that
# the load of a shared machine falls on both sides alike (two runs of
# `go test -count 5` one after the other would compare two different minutes).
# Each binary runs in its package's directory, as `go test` runs it.
#
# Writes NEW (bench.out: this tree's `go test -bench` output, which the load
# harness summarises) and OUT (bench-cmp.md: the markdown section the load
# harness puts into BENCHMARKS.md), and prints the comparison. `make bench`
# passes the packages (BENCH_PKGS in the Makefile).
#
# Environment: BASE (HEAD~1), COUNT (5), BENCHTIME (1s), NEW (bench.out),
# OUT (bench-cmp.md), GO (go).
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: hack/benchcmp.sh PKG... (make bench passes BENCH_PKGS)" >&2; exit 2; }
# benchstat (golang.org/x/perf), pinned; `go run pkg@version`, like the
# Makefile's staticcheck, builds it outside this module: no go.mod entry.
BENCHSTAT=golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
GO=${GO:-go} BASE=${BASE:-HEAD~1} COUNT=${COUNT:-5} BENCHTIME=${BENCHTIME:-1s}
NEW=${NEW:-bench.out} OUT=${OUT:-bench-cmp.md}
cd "$(git rev-parse --show-toplevel)"

base=$(git rev-parse --short --verify -q "$BASE^{commit}") || { echo "benchcmp: BASE=$BASE is not a commit" >&2; exit 1; }
here=$(git rev-parse --short HEAD)
[ -z "$(git status --porcelain --untracked-files=no -- ':(exclude)BENCHMARKS.md')" ] || here=$here-dirty
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/base" 2>/dev/null || true; rm -rf "$tmp"; git worktree prune' EXIT
git worktree add -q --detach "$tmp/base" "$base"

# build TREE NAME PKG: the test binary of PKG in TREE as $tmp/NAME/PKG.test.
build() {
  local bin=$tmp/$2/${3//\//_}.test
  mkdir -p "$tmp/$2"
  (cd "$1" && "$GO" test -c -o "$bin" "$3") && { [ -x "$bin" ] || echo "benchcmp: $3 has no tests in $2" >&2; }
}
for p in "$@"; do
  build . here "$p" || { echo "benchcmp: $p does not build here" >&2; exit 1; }
  if [ -d "$tmp/base/$p" ] && build "$tmp/base" base "$p"; then :; else echo "benchcmp: $p is not at $base or does not build there: measured only here" >&2; fi
done

# bench SIDE DIR PKG: one run of PKG's benchmarks (SIDE's binary, in DIR/PKG).
bench() { (cd "$2/$3" && "$tmp/$1/${3//\//_}.test" -test.run '^$' -test.bench . -test.benchmem -test.count 1 -test.benchtime "$BENCHTIME"); }
# benchstat names its columns after the files: the commits (BASE=HEAD on a
# clean tree, a check of the noise, compares a commit with itself).
old=$base new=$here
[ "$old" != "$new" ] || new=$here-again
: > "$tmp/$old"; : > "$tmp/$new"
for round in $(seq "$COUNT"); do
  echo "benchcmp: round $round of $COUNT" >&2
  for p in "$@"; do
    [ -x "$tmp/here/${p//\//_}.test" ] || continue
    if [ -x "$tmp/base/${p//\//_}.test" ]; then
      bench base "$tmp/base" "$p" >> "$tmp/$old" || echo "benchcmp: $p's benchmarks failed at $base" >&2
    fi
    bench here . "$p" >> "$tmp/$new" || { echo "benchcmp: $p's benchmarks failed here" >&2; exit 1; }
  done
done
cp "$tmp/$new" "$NEW"

cmp=$(cd "$tmp" && "$GO" run "$BENCHSTAT" "$old" "$new")
echo "$cmp"
{
  echo "## Go benchmarks against $base ($BASE)"
  echo
  echo "\`hack/benchcmp.sh\` ($BENCHSTAT): every benchmark of \`$*\` $COUNT times (\`-benchtime $BENCHTIME -benchmem\`)"
  echo "at $base ($(git log -1 --format=%s "$base" | cut -c1-80)) and at $here, the two trees taking turns."
  echo "A ± is the spread of the runs; \`~\` says the difference is not significant (p ≥ 0.05)."
  echo
  echo '```'
  echo "$cmp"
  echo '```'
} > "$OUT"
