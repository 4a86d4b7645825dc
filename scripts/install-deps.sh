#!/usr/bin/env bash
# Installs the Debian packages ferrum builds against. Idempotent: installs only what is missing.
# When another apt or dpkg holds the lock (unattended-upgrades on a fresh machine), it waits up to
# 5 minutes for it instead of failing.
set -euo pipefail
pkgs=(cmake make gcc pkg-config libcjson-dev libpcre2-dev libutf8proc-dev libmicrohttpd-dev libedit-dev python3 python3-pip)
# Extra packages named on the command line (scripts/sanitize-test.sh asks for clang).
pkgs+=("$@")
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
    # DPkg::Lock::Timeout makes apt (>= 1.9.11) wait for the dpkg lock; `update` takes the lists
    # lock, which it may not wait for, so a failure naming a lock is retried (30 x 10 s)
    wait_lock=(-o DPkg::Lock::Timeout=300)
    tries=0
    until out="$($SUDO apt-get "${wait_lock[@]}" update -qq 2>&1)"; do
        tries=$((tries + 1))
        if ! grep -qi "lock" <<<"$out" || [ "$tries" -ge 30 ]; then
            printf '%s\n' "$out" >&2
            echo "install-deps: apt-get update failed" >&2
            exit 1
        fi
        echo "install-deps: apt is busy (lock held); retrying in 10 s" >&2
        sleep 10
    done
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${wait_lock[@]}" install -y -qq "${filtered[@]}"
fi
