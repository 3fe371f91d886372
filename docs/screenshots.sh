#!/usr/bin/env bash
# The README's screenshots of the live, gallery and search pages: a run of the shipped model on
# the synthetic camera with --http, --store and --snapshots, photographed by headless Chromium
# (tests/browser/drive.py, as the browser test drives it). Needs chromium and python3.
# Usage: bash docs/screenshots.sh   (writes docs/live.png, docs/gallery.png, docs/search.png)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

cargo build --release --bin edge-reid
work=$(mktemp -d)
trap 'kill "$run" 2>/dev/null || true; rm -rf "$work"' EXIT

cd "$work"
"$repo/target/release/edge-reid" --synthetic --quiet --store tracks.db --snapshots --max-lost 5 \
    --http 127.0.0.1:0 2>run.log &
run=$!
until base=$(grep -o 'live page on http://[0-9.:]*' run.log | cut -d' ' -f4) && [ -n "$base" ]; do
    kill -0 "$run" || { cat run.log >&2; exit 1; }
    sleep 0.2
done

cat >steps.json <<EOF
[
  {"open": "$base/"},
  {"wait": "document.getElementById('view').naturalWidth > 0 && document.querySelectorAll('#people .name:not(.unknown)').length > 0 && document.getElementById('rate').textContent && document.querySelectorAll('#events li').length > 3"},
  {"screenshot": "$repo/docs/live.png"},
  {"open": "$base/gallery"},
  {"wait": "[...document.querySelectorAll('#tracks .track img')].filter(i => i.complete && i.naturalWidth > 0).length > 1"},
  {"eval": "(() => { const li = [...document.querySelectorAll('#tracks .track')].find(l => l.querySelector('img').naturalWidth > 0); li.querySelector('input[name=name]').value = 'alice'; li.querySelector('form').requestSubmit(); })()"},
  {"wait": "document.getElementById('message').textContent.startsWith('enrolled alice') && document.querySelector('#people .person')"},
  {"screenshot": "$repo/docs/gallery.png"},
  {"open": "$base/search?upcolor=red"},
  {"wait": "typeof search === 'function' && document.getElementById('query').elements.upcolor"},
  {"wait": "search().then(() => document.querySelectorAll('#results .result img').length > 2)", "timeout": 300},
  {"screenshot": "$repo/docs/search.png"}
]
EOF
python3 "$repo/tests/browser/drive.py" steps.json
echo "wrote docs/live.png docs/gallery.png docs/search.png"
