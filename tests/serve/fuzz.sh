#!/usr/bin/env bash
# `make fuzz`: schemathesis, a fuzzer for HTTP APIs, against `lm serve`'s own /openapi.json.
#
# A tiny poem model and its 3-gram are made in a temporary store, `lm serve` starts on a free
# port of 127.0.0.1, and schemathesis sends every operation schema-valid and schema-invalid
# requests (fixed seed, bounded examples) with all its checks: no 5xx (but the 503 of a
# deadline), every status documented, every body as its schema says, invalid input refused.
# Then SIGTERM must stop the server within 5 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
LM=${LM:-.venv/bin/lm}
ST=${ST:-.venv/bin/st}
EXAMPLES=${FUZZ_EXAMPLES:-60}
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
export WANDB_MODE=disabled HF_HUB_OFFLINE=1 HF_DATASETS_CACHE="$work/hf"
.venv/bin/python - "$work/poems.txt" <<'PY'
import random, sys
chars = "春夏秋冬山花天人雲風東中空紅同江樓年家流月日水雨白鳥去客夜落酒石草柳"
rng = random.Random(5)
with open(sys.argv[1], "w", encoding="utf-8") as out:
    for _ in range(300):
        line = lambda: "".join(rng.choice(chars) for _ in range(5))
        out.write(f"{line()}，{line()}。\n{line()}，{line()}。\n\n")
PY
store=(--artifacts "$work/store")
"$LM" "${store[@]}" prepare "$work/poems.txt" --doc-sep blank --name p >/dev/null
"$LM" "${store[@]}" train p --max-steps 20 --emb-size 16 --hidden-size 16 --batch-size 8 \
    --bptt 10 --eval-tokens 100 --no-wandb --no-progress >/dev/null
"$LM" "${store[@]}" ngram p --order 3 --no-arpa >/dev/null
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$LM" "${store[@]}" serve p --ngram p-3gram --port "$port" --limit-seconds 5 \
    --limit-tokens 300 --limit-num 16 --limit-texts 16 --limit-chars 400 \
    >"$work/serve.log" 2>&1 &
server=$!
.venv/bin/python - "$port" <<'PY'
import sys, time, urllib.request
for _ in range(300):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/model", timeout=1)
        break
    except OSError:
        time.sleep(0.2)
else:
    sys.exit("error: lm serve did not answer within 60 s")
PY
status=0
"$ST" --config-file tests/serve/schemathesis.toml run "http://127.0.0.1:$port/openapi.json" \
    --checks all --seed 1 \
    --max-examples "$EXAMPLES" --workers 1 --request-timeout 20 --no-color || status=$?
start=$(date +%s%N)
kill -TERM "$server"
wait "$server" || true
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
echo "lm serve stopped ${elapsed} ms after SIGTERM"
if [ "$elapsed" -gt 5000 ]; then
    echo "error: lm serve took ${elapsed} ms to stop after SIGTERM (more than 5 s)" >&2
    exit 1
fi
exit "$status"
