#!/usr/bin/env bash
# Build the capture -> records benchmark workload described in shared/PERFORMANCE.md.
#
#   benchmarks/build_workload.sh            # workload.pcap (>= 5 M packets), slices, payload subset
#   BIG=1 benchmarks/build_workload.sh      # also big.pcap (several GB) for the memory test
#
# Everything is written under benchmarks/work/ (git-ignored). Idempotent: a step whose output
# exists and was built with the same parameters is skipped (stamps in work/*.stamp).
#
# Variables:
#   MAMORI_DATA      shared captures (default ../shared/data relative to the repo)
#   ROUNDS           rounds of the merged base (default: enough for MIN_PACKETS)
#   MIN_PACKETS      packets the workload must reach when ROUNDS is unset (default 5,000,000)
#   PAYLOAD_PACKETS  packets of the payload-rich subset (default 1,000,000)
#   BIG=1, BIG_GB    build big.pcap of at least BIG_GB GB (default 6)
#   ROUND_PERIOD     seconds between the starts of two rounds (default 3600, > every timeout)
#
# How: every Ethernet (linktype 1) pcap/pcapng under MAMORI_DATA (the two modbus fuzz captures left
# out, as in zeek-reference) is time-shifted so the captures start side by side within 300 s, then
# merged (mergecap). Round r is that base with IPv4/IPv6 addresses perturbed by `tcprewrite
# --seed=r` (so 5-tuples never repeat across rounds) and shifted by r * ROUND_PERIOD; the rounds are
# merged chronologically. Slices for the slower peers are cut from the same rounds.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
DATA="${MAMORI_DATA:-$repo/../shared/data}"
DATA="$(cd "$DATA" && pwd)"
WORK="$here/work"
MIN_PACKETS="${MIN_PACKETS:-5000000}"
PAYLOAD_PACKETS="${PAYLOAD_PACKETS:-1000000}"
ROUND_PERIOD="${ROUND_PERIOD:-3600}"
BIG_GB="${BIG_GB:-6}"
T0=1577836800 # 2020-01-01T00:00:00Z: leaves room below 2^32 s for the longest shared capture

log() { printf '[build_workload] %s\n' "$*" >&2; }

need_tools() {
    local missing=()
    for t in mergecap editcap capinfos tshark tcprewrite; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    if ((${#missing[@]})); then
        log "installing wireshark-common tshark tcpreplay (missing: ${missing[*]})"
        export DEBIAN_FRONTEND=noninteractive
        echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections || true
        apt-get update -q >/dev/null
        apt-get install -y -q wireshark-common tshark tcpreplay >/dev/null
    fi
}

# stamp NAME VALUE: true when work/NAME.stamp holds VALUE (the step is up to date).
fresh() { [[ -f "$WORK/$1.stamp" && "$(cat "$WORK/$1.stamp")" == "$2" ]]; }
mark() { printf '%s' "$2" >"$WORK/$1.stamp"; }

packets_of() { capinfos -T -r -c "$1" | cut -f2; }

# build_base NAME LISTFILE: shift every capture of LISTFILE to start within 300 s of T0, merge.
build_base() {
    local name="$1" list="$2" out="$WORK/$1-base.pcap"
    local key
    key="$(sha256sum "$list" | cut -c1-16)"
    if fresh "$name-base" "$key" && [[ -f "$out" ]]; then return; fi
    log "$name: shifting and merging $(wc -l <"$list") captures"
    local tmp="$WORK/tmp-$name"
    rm -rf "$tmp" && mkdir -p "$tmp"
    local n i=0 start delta
    n="$(wc -l <"$list")"
    while IFS= read -r f; do
        start="$(capinfos -T -r -a -S "$f" | cut -f2)"
        # spread the starts evenly over 300 s
        delta="$(awk -v t0="$T0" -v i="$i" -v n="$n" -v s="$start" \
            'BEGIN { printf "%.6f", t0 + (300.0 * i) / n - s }')"
        editcap -F pcap -t "$delta" "$f" "$tmp/$(printf '%04d' "$i").pcap"
        i=$((i + 1))
    done <"$list"
    mergecap -F pcap -w "$out.tmp" "$tmp"/*.pcap
    mv "$out.tmp" "$out"
    rm -rf "$tmp" "$WORK/$name-rounds" # rounds of an older base are stale
    mark "$name-base" "$key"
}

# build_round NAME R: round R of NAME's base (addresses perturbed with seed R, time shifted).
build_round() {
    local name="$1" r="$2" dir="$WORK/$1-rounds"
    local out
    out="$dir/$(printf '%04d' "$r").pcap"
    [[ -f "$out" ]] && return
    mkdir -p "$dir"
    # tcprewrite warns once per truncated ICMP packet it cannot checksum: keep that out of sight
    tcprewrite --seed="$r" --infile="$WORK/$name-base.pcap" --outfile="$out.rw" 2>>"$WORK/tcprewrite.log"
    editcap -F pcap -t "$(((r - 1) * ROUND_PERIOD))" "$out.rw" "$out.tmp"
    rm -f "$out.rw"
    mv "$out.tmp" "$out"
}

# build_merged NAME FIRST LAST OUT: rounds FIRST..LAST merged chronologically into OUT.
build_merged() {
    local name="$1" first="$2" last="$3" out="$4"
    local key="$name:$first:$last:$ROUND_PERIOD:$(cat "$WORK/$name-base.stamp")"
    local stampname
    stampname="$(basename "$out" .pcap)"
    if fresh "$stampname" "$key" && [[ -f "$out" ]]; then return; fi
    local files=() r
    for ((r = first; r <= last; r++)); do
        build_round "$name" "$r"
        files+=("$WORK/$name-rounds/$(printf '%04d' "$r").pcap")
    done
    log "$(basename "$out"): merging rounds $first..$last"
    mergecap -F pcap -w "$out.tmp" "${files[@]}"
    mv "$out.tmp" "$out"
    mark "$stampname" "$key"
}

# first_packets IN N OUT: the first N packets of IN.
first_packets() {
    local in="$1" n="$2" out="$3"
    local key
    key="$n:$(stat -c %s:%Y "$in")"
    local stampname
    stampname="$(basename "$out" .pcap)"
    if fresh "$stampname" "$key" && [[ -f "$out" ]]; then return; fi
    editcap -F pcap -r "$in" "$out.tmp" "1-$n"
    mv "$out.tmp" "$out"
    mark "$stampname" "$key"
}

main() {
    need_tools
    mkdir -p "$WORK"

    # 1. The Ethernet captures (linktype 1), fuzz captures left out.
    local all="$WORK/ether.list.new"
    find "$DATA" -type f \( -name '*.pcap' -o -name '*.pcapng' -o -name '*.cap' \) \
        ! -path '*/modbus/fuzz-*' | LC_ALL=C sort | while IFS= read -r f; do
        info="$(capinfos -T -r -E "$f" 2>/dev/null | cut -f2)" || continue
        [[ "$info" == "ether" ]] && printf '%s\n' "$f"
    done >"$all"
    if ! cmp -s "$all" "$WORK/ether.list" 2>/dev/null; then mv "$all" "$WORK/ether.list"; else rm -f "$all"; fi
    log "$(wc -l <"$WORK/ether.list") Ethernet captures under $DATA"

    # 2. The payload-rich captures: those whose zeek-reference logs have dns, http or ssl rows.
    local idx="$DATA/zeek-reference/index.tsv" pl="$WORK/payload.list.new"
    awk -F'\t' 'NR > 1 && ($6 > 0 || $7 > 0 || $8 > 0) { print $1 }' "$idx" | while IFS= read -r rel; do
        grep -Fx "$DATA/$rel" "$WORK/ether.list" || true
    done | LC_ALL=C sort >"$pl"
    if ! cmp -s "$pl" "$WORK/payload.list" 2>/dev/null; then mv "$pl" "$WORK/payload.list"; else rm -f "$pl"; fi
    log "$(wc -l <"$WORK/payload.list") payload-rich captures (dns/http/ssl rows in zeek-reference)"

    build_base main "$WORK/ether.list"
    build_base payload "$WORK/payload.list"

    local per rounds
    per="$(packets_of "$WORK/main-base.pcap")"
    rounds="${ROUNDS:-$(((MIN_PACKETS + per - 1) / per))}"
    log "main base: $per packets per round, $rounds rounds"

    # 3. The workload, and the slices the slower peers run on.
    build_merged main 1 "$rounds" "$WORK/workload.pcap"
    local r10=$((rounds < 10 ? rounds : 10))
    build_merged main 1 "$r10" "$WORK/workload-10r.pcap"
    local total
    total="$(packets_of "$WORK/workload.pcap")"
    first_packets "$WORK/workload.pcap" $((total / 100)) "$WORK/workload-1pct.pcap"
    first_packets "$WORK/workload.pcap" 200000 "$WORK/workload-200k.pcap"

    # 4. The payload-rich subset.
    local pper prounds
    pper="$(packets_of "$WORK/payload-base.pcap")"
    prounds=$(((PAYLOAD_PACKETS + pper - 1) / pper))
    log "payload base: $pper packets per round, $prounds rounds"
    build_merged payload 1 "$prounds" "$WORK/payload.pcap"

    # 5. The multi-GB capture for the memory test (more rounds of the same base).
    if [[ "${BIG:-0}" == "1" ]]; then
        local size_per brounds
        size_per="$(stat -c %s "$WORK/main-rounds/0001.pcap")"
        brounds=$(((BIG_GB * 1000000000 + size_per - 1) / size_per))
        build_merged main 1 "$brounds" "$WORK/big.pcap"
    fi

    {
        printf 'file\tpackets\tbytes\n'
        for f in "$WORK"/workload*.pcap "$WORK"/payload.pcap "$WORK"/big.pcap; do
            [[ -f "$f" ]] || continue
            printf '%s\t%s\t%s\n' "$(basename "$f")" "$(packets_of "$f")" "$(stat -c %s "$f")"
        done
    } >"$WORK/manifest.tsv"
    printf 'rounds\t%s\npayload_rounds\t%s\nper_round\t%s\ncaptures\t%s\npayload_captures\t%s\n' \
        "$rounds" "$prounds" "$per" "$(wc -l <"$WORK/ether.list")" \
        "$(wc -l <"$WORK/payload.list")" >"$WORK/params.tsv"
    column -t "$WORK/manifest.tsv" >&2
}

main "$@"
