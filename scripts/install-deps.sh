#!/usr/bin/env bash
# Installs the Debian packages ferrum builds against. Idempotent: installs only what is missing.
set -euo pipefail
pkgs=(cmake make gcc pkg-config libcjson-dev libpcre2-dev libutf8proc-dev libmicrohttpd-dev python3 python3-pip)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# python3/pip may come from elsewhere (pyenv); accept them if they run.
filtered=()
for p in "${missing[@]}"; do
    case "$p" in
    python3) command -v python3 >/dev/null || filtered+=("$p") ;;
    python3-pip) python3 -m pip --version >/dev/null 2>&1 || filtered+=("$p") ;;
    *) filtered+=("$p") ;;
    esac
done
if [ ${#filtered[@]} -gt 0 ]; then
    echo "install-deps: installing ${filtered[*]}"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${filtered[@]}"
fi
