#!/usr/bin/env bash
# Instructions the server spends, counted by callgrind: a figure that does not move with the
# machine's load, for comparing two builds where wall-clock rates vary by a third from run to run.
#
#   bench/callgrind.sh [SERVER_BINARY]            the rush (default)
#   bench/callgrind.sh reads [SERVER_BINARY]      a ping, a position poll and an event read
#
# The rush: `boxoffice-bench rush` (4,000 registrations on 3,000 seats, 32 connections) against the
# server under `valgrind --tool=callgrind --separate-threads=yes`; prints, per registration, the
# instructions of the writer thread, of the sale command inside it, and of all the server's threads
# (setup included: 4,000 attendees are created first).
#
# Reads: `baseline`, `position` and `read-event` (16 connections; `position` over 4,000 attendees),
# each run twice, at --requests 20,000 and 40,000. The difference of the two runs' instructions (all
# server threads) is the cost of 20,000 more requests with the setup cancelled out; `position` and
# `read-event` send as many pings as reads (their bracket), so a ping's cost is taken off theirs.
# Prints instructions per request of a ping, a position poll and an event read. About 8 minutes.
#
# Default server: target/release/boxoffice. Needs valgrind. With KEEP=1 the profiles stay (the
# directory is printed on stderr) for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=rush
if [ "${1:-}" = reads ]; then
    mode=reads
    shift
fi
server=$(realpath "${1:-target/release/boxoffice}")
out=$(mktemp -d)
trap 'if [ -n "${KEEP:-}" ]; then echo "profiles kept in $out" >&2; else rm -rf "$out"; fi' EXIT

# Runs one benchmark scenario against the server under callgrind, its profiles in directory $1.
profiled() {
    local dir=$1
    shift
    mkdir -p "$dir"
    cat > "$dir/server" <<WRAP
#!/usr/bin/env bash
if [ "\$1" = serve ]; then
  exec valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file=$dir/cg.%p "$server" "\$@"
fi
exec "$server" "\$@"
WRAP
    chmod +x "$dir/server"
    target/release/boxoffice-bench "$@" --server "$dir/server" --out "$dir/report.json" >/dev/null
}

# Instructions of all the server's threads in the profiles of directory $1.
total() {
    local all=0 n f
    for f in "$1"/cg.*-*; do
        n=$(grep -E '^(summary|totals):' "$f" | head -1 | awk '{print $2}')
        all=$((all + ${n:-0}))
    done
    echo "$all"
}

if [ "$mode" = reads ]; then
    per_request() { # scenario, extra args...: instructions of 20,000 more requests, / 20,000
        local scenario=$1
        shift
        profiled "$out/$scenario-20k" "$scenario" --requests 20000 --connections 16 "$@"
        profiled "$out/$scenario-40k" "$scenario" --requests 40000 --connections 16 "$@"
        echo $((($(total "$out/$scenario-40k") - $(total "$out/$scenario-20k")) / 20000))
    }
    ping=$(per_request baseline)
    position=$(($(per_request position --registrations 4000) - ping))
    event=$(($(per_request read-event) - ping))
    echo "instructions per request (all server threads): ping $ping, position poll $position, event read $event"
    exit 0
fi

profiled "$out/rush" rush --registrations 4000 --capacity 3000 --connections 32
writer=0
for f in "$out"/rush/cg.*-*; do
    if grep -q 'store::writer::run' "$f"; then
        writer_file=$f
        writer=$(grep -E '^(summary|totals):' "$f" | head -1 | awk '{print $2}')
    fi
done
all=$(total "$out/rush")
sale=$(callgrind_annotate --inclusive=yes "$writer_file" 2>/dev/null \
    | grep -m1 'register_command' | awk '{gsub(",", "", $1); print $1}')
echo "instructions per registration (4,000): writer $((writer / 4000)), sale command $((sale / 4000)), all server threads $((all / 4000))"
