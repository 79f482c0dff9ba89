#!/usr/bin/env bash
# Instructions the server spends on a small rush, counted by callgrind: a figure that does not move
# with the machine's load, for comparing two builds where the wall-clock rush varies by a third from
# run to run. It runs `boxoffice-bench rush` (4,000 registrations on 3,000 seats, 32 connections)
# against the server under `valgrind --tool=callgrind --separate-threads=yes` and prints, per
# registration, the instructions of the writer thread, of the sale command inside it, and of all
# the server's threads (setup included: 4,000 attendees are created first).
#
#   bench/callgrind.sh [SERVER_BINARY]     (default: target/release/boxoffice; needs valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
server=$(realpath "${1:-target/release/boxoffice}")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cat > "$out/server" <<WRAP
#!/usr/bin/env bash
if [ "\$1" = serve ]; then
  exec valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file=$out/cg.%p "$server" "\$@"
fi
exec "$server" "\$@"
WRAP
chmod +x "$out/server"
target/release/boxoffice-bench rush --server "$out/server" --registrations 4000 --capacity 3000 \
    --connections 32 --out "$out/rush.json" >/dev/null
all=0
for f in "$out"/cg.*-*; do
    n=$(grep -E '^(summary|totals):' "$f" | head -1 | awk '{print $2}')
    all=$((all + ${n:-0}))
    if grep -q 'store::writer::run' "$f"; then writer_file=$f; writer=$n; fi
done
sale=$(callgrind_annotate --inclusive=yes "$writer_file" 2>/dev/null \
    | grep -m1 'register_command' | awk '{gsub(",", "", $1); print $1}')
echo "instructions per registration (4,000): writer $((writer / 4000)), sale command $((sale / 4000)), all server threads $((all / 4000))"
