#!/usr/bin/env bash
# Builds and runs libFuzzer targets.
#   Fuzz/run.sh TARGET SECONDS [libFuzzer args...]   one target
#   Fuzz/run.sh all SECONDS                           every target, SECONDS each
#   Fuzz/run.sh build                                 build every target only
# Crashes, leaks and timeouts stop the run with a non-zero status; the reproducer is written to
# Fuzz/artifacts/. Each run starts from the committed seeds in Fuzz/Corpus/TARGET and keeps what it finds in
# Fuzz/.work/TARGET (not committed).
set -euo pipefail
cd "$(dirname "$0")"

TARGETS=(FrameParserFuzzer ConnectionFuzzer HandshakeRequestFuzzer HandshakeResponseFuzzer ExtensionHeaderFuzzer
         DifferentialFuzzer InflateFuzzer ProxyReplyFuzzer HubProtocolFuzzer EventStreamParserFuzzer
         ExtendedConnectFuzzer RESPParserFuzzer BackplaneEnvelopeFuzzer)
FLAGS=(-c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library)

build() {
    for target in "$@"; do
        swift build "${FLAGS[@]}" --product "$target"
    done
}

run() {
    local target=$1 seconds=$2
    shift 2
    local bin
    bin="$(swift build "${FLAGS[@]}" --show-bin-path)/$target"
    mkdir -p ".work/$target" artifacts "Corpus/$target"
    local dict=()
    [ -f "Dictionaries/$target.dict" ] && dict=(-dict="Dictionaries/$target.dict")
    echo "== $target for ${seconds}s"
    "$bin" ".work/$target" "Corpus/$target" "${dict[@]}" -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 -artifact_prefix="artifacts/$target-" "$@" \
        2>&1 | grep -E "^#[0-9]+[[:space:]]+(DONE|INITED)|stat::|ERROR|SUMMARY|Test unit written|invariant|Fatal|panic" || true
    # grep swallows libFuzzer's status; a crash leaves an artifact behind.
    if compgen -G "artifacts/$target-*" >/dev/null; then
        echo "!! $target: crash/leak/timeout artifacts:"; ls -l artifacts/"$target"-*
        return 1
    fi
}

case "${1:-}" in
    build) build "${TARGETS[@]}" ;;
    all)
        build "${TARGETS[@]}"
        status=0
        for target in "${TARGETS[@]}"; do run "$target" "${2:-60}" || status=1; done
        exit $status
        ;;
    "") echo "usage: $0 TARGET|all|build SECONDS" >&2; exit 2 ;;
    *)
        build "$1"
        target=$1
        shift
        run "$target" "${1:-60}" "${@:2}"
        ;;
esac
