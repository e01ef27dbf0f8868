#!/usr/bin/env bash
# Publish the merchant console to a deployed stack: build console/ (unless --dist is given),
# write config.json from the stack's outputs, upload to the console bucket with a Cache-Control
# per kind of file, then invalidate what is not content-addressed.
#
#   infra/deploy-console.sh --stack NAME [--dist DIR]
#
#   --stack NAME   the CloudFormation stack `sam deploy` created (its outputs name the API,
#                  Cognito, the console bucket and the distribution)
#   --dist DIR     upload this already-built folder instead of building console/
#
# Needs the AWS CLI (`make deploy` uses .venv-deploy/bin/aws) and, to build, Node.js/npm.
# Environment: CONSOLE_DIR (default: console/ of this repository), the usual AWS_* variables.
#
# Cache-Control: assets/ holds Vite's content-hashed files, cached a year and immutable (and
# kept after later deploys, so a browser still on the previous index.html can load its chunks);
# index.html and config.json are revalidated on every load (no-cache) and invalidated in
# CloudFront; any other file (favicon, robots.txt) is cached an hour. index.html goes last,
# so it never names an asset that is not there yet.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONSOLE_DIR="${CONSOLE_DIR:-$ROOT/console}"
IMMUTABLE="public, max-age=31536000, immutable"
REVALIDATE="no-cache"
SHORT="public, max-age=3600"

log() { printf 'deploy-console: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

stack=""
dist=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --stack) stack="${2:-}"; shift 2 ;;
        --dist) dist="${2:-}"; shift 2 ;;
        -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
[[ -n "$stack" ]] || die "--stack NAME is required"
command -v aws >/dev/null || die "the AWS CLI is not on PATH (make deploy puts .venv-deploy/bin first)"

# The stack's outputs, as "Key<TAB>Value" lines.
outputs="$(aws cloudformation describe-stacks --stack-name "$stack" \
    --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output text)" \
    || die "cannot read the outputs of stack $stack"

output() {
    local value
    value="$(awk -F '\t' -v key="$1" '$1 == key { print $2 }' <<<"$outputs")"
    [[ -n "$value" && "$value" != "None" ]] || die "stack $stack has no output $1"
    # Written into JSON below unquoted: only characters of URLs and ids may pass.
    [[ "$value" =~ ^[A-Za-z0-9._~:/?#@!\$\&\'()*+,\;=%-]+$ ]] || die "output $1 is not a URL or an id: $value"
    printf '%s' "$value"
}

api_url="$(output ConsoleApiUrl)"
cognito_domain="$(output CognitoDomainUrl)"
client_id="$(output UserPoolClientId)"
console_url="$(output ConsoleUrl)"
bucket="$(output ConsoleBucketName)"
distribution="$(output DistributionId)"

if [[ -z "$dist" ]]; then
    [[ -f "$CONSOLE_DIR/package.json" ]] \
        || die "no console to build: $CONSOLE_DIR/package.json is missing (build it elsewhere and pass --dist DIR)"
    command -v npm >/dev/null || die "npm is not on PATH: install Node.js to build the console"
    log "building the console in $CONSOLE_DIR"
    (cd "$CONSOLE_DIR" && npm ci --no-audit --no-fund && npm run build)
    dist="$CONSOLE_DIR/dist"
fi
[[ -f "$dist/index.html" ]] || die "$dist/index.html is missing: not a console build"

content_type() {
    case "$1" in
        html) echo "text/html; charset=utf-8" ;;
        js|mjs) echo "text/javascript; charset=utf-8" ;;
        css) echo "text/css; charset=utf-8" ;;
        json|map) echo "application/json" ;;
        webmanifest) echo "application/manifest+json" ;;
        svg) echo "image/svg+xml" ;;
        png) echo "image/png" ;;
        jpg|jpeg) echo "image/jpeg" ;;
        gif) echo "image/gif" ;;
        webp) echo "image/webp" ;;
        avif) echo "image/avif" ;;
        ico) echo "image/x-icon" ;;
        woff2) echo "font/woff2" ;;
        woff) echo "font/woff" ;;
        txt) echo "text/plain; charset=utf-8" ;;
        wasm) echo "application/wasm" ;;
        *) echo "" ;;
    esac
}

# Uploads run side by side (each CLI call is a Python start-up); wait_uploads fails if any did.
pids=()
wait_uploads() {
    local pid failed=0
    for pid in "${pids[@]}"; do
        wait "$pid" || failed=1
    done
    pids=()
    [[ "$failed" -eq 0 ]] || die "an upload failed (see above); index.html was not replaced"
}

# upload SRC DEST CACHE_CONTROL [FILTER...]: every file of SRC/ (past the filters) to DEST/,
# one CLI call per extension so each kind gets its own Content-Type (the CLI's guess depends
# on the machine's mime.types).
upload() {
    local src="$1" dest="$2" cache="$3" ext type
    shift 3
    [[ -d "$src" ]] || return 0
    while IFS= read -r ext; do
        type="$(content_type "$ext")"
        local args=(--only-show-errors --exclude '*' --include "*.$ext" "$@" --cache-control "$cache")
        [[ -n "$type" ]] && args+=(--content-type "$type")
        aws s3 cp "$src" "$dest" --recursive "${args[@]}" &
        pids+=("$!")
    done < <(find "$src" -type f -name '*.*' | sed 's/.*\.//' | LC_ALL=C sort -u)
}

# A file without an extension is never served: CloudFront answers its path with index.html.
if find "$dist" -type f ! -name '*.*' | grep -q .; then
    log "warning: files without an extension are not uploaded (their paths are console routes)"
fi

log "uploading $dist to s3://$bucket"
upload "$dist/assets" "s3://$bucket/assets" "$IMMUTABLE"
upload "$dist" "s3://$bucket" "$SHORT" --exclude 'assets/*' --exclude index.html --exclude config.json

# The console reads /config.json when it starts: its API, Cognito domain and app client.
config="$(mktemp)"
trap 'rm -f "$config"' EXIT
printf '{"apiUrl":"%s","cognitoDomain":"%s","clientId":"%s","redirectUri":"%s/auth/callback","logoutUri":"%s/"}\n' \
    "$api_url" "$cognito_domain" "$client_id" "$console_url" "$console_url" >"$config"
aws s3 cp "$config" "s3://$bucket/config.json" --only-show-errors \
    --cache-control "$REVALIDATE" --content-type "application/json" &
pids+=("$!")
wait_uploads
aws s3 cp "$dist/index.html" "s3://$bucket/index.html" --only-show-errors \
    --cache-control "$REVALIDATE" --content-type "$(content_type html)"

invalidation="$(aws cloudfront create-invalidation --distribution-id "$distribution" \
    --paths /index.html /config.json --query Invalidation.Id --output text)"
log "invalidation $invalidation of /index.html and /config.json on $distribution"
log "console: $console_url"
