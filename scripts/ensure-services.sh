#!/usr/bin/env bash
# Make sure this machine has what the test suite needs: the Debian packages for the private
# Dovecot / sshd / Chromium instances the tests start themselves, and the shared PostgreSQL and
# Redis servers running on loopback. Idempotent: run it as often as you like.
set -euo pipefail

# fonts-liberation is only a Recommends of chromium; without it pages render in fallback fonts.
PACKAGES=(dovecot-imapd chromium fonts-liberation openssh-server openssh-sftp-server)

log() { printf 'ensure-services: %s\n' "$*" >&2; }
die() { printf 'ensure-services: ERROR: %s\n' "$*" >&2; exit 1; }

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}

# PID of a running daemon recorded in PIDFILE, or nothing.
running_pid() {
    local pidfile=$1 pid
    [ -r "$pidfile" ] || return 0
    pid=$(tr -dc '0-9' <"$pidfile")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
}

wait_gone() {
    local pid=$1 i
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

# A package install may start the system daemon on its public port. The tests run private
# instances, so stop a system daemon that was not running before the install.
stop_if_started_by_install() {
    local name=$1 pidfile=$2 before=$3 pid
    pid=$(running_pid "$pidfile")
    if [ -n "$pid" ] && [ "$pid" != "$before" ]; then
        log "stopping the system $name (pid $pid) that the package install started"
        if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
            systemctl stop "$name" >/dev/null 2>&1 || true
            systemctl disable "$name" >/dev/null 2>&1 || true
        fi
        kill -TERM "$pid" 2>/dev/null || true
        wait_gone "$pid" || die "the system $name (pid $pid) did not stop"
    fi
}

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        is_installed "$p" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        die "missing Debian packages: ${missing[*]} (run as root, or: apt-get install ${missing[*]})"
    fi
    command -v apt-get >/dev/null 2>&1 || die "missing packages ${missing[*]} and no apt-get here"
    local dovecot_before sshd_before
    dovecot_before=$(running_pid /run/dovecot/master.pid)
    sshd_before=$(running_pid /run/sshd.pid)
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    local apt_log
    apt_log=$(mktemp)
    if ! apt-get update -qq >"$apt_log" 2>&1; then
        cat "$apt_log" >&2
        die "apt-get update failed"
    fi
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$apt_log" 2>&1; then
        cat "$apt_log" >&2
        die "apt-get install ${missing[*]} failed"
    fi
    rm -f "$apt_log"
    for p in "${missing[@]}"; do
        is_installed "$p" || die "package $p is still not installed after apt-get install"
    done
    stop_if_started_by_install dovecot /run/dovecot/master.pid "$dovecot_before"
    stop_if_started_by_install ssh /run/sshd.pid "$sshd_before"
}

check_binaries() {
    local b
    for b in /usr/sbin/dovecot /usr/sbin/sshd /usr/bin/chromium /usr/bin/ssh-keygen; do
        [ -x "$b" ] || die "$b is missing"
    done
    # sshd refuses to start without its privilege separation directory.
    mkdir -p /run/sshd 2>/dev/null || true
    chmod 0755 /run/sshd 2>/dev/null || true
}

ensure_postgres() {
    command -v pg_isready >/dev/null 2>&1 || die "PostgreSQL client tools (pg_isready) are not installed"
    if pg_isready -q -h 127.0.0.1 -p 5432; then return 0; fi
    [ -d /etc/postgresql ] || die "PostgreSQL is down and no cluster exists under /etc/postgresql"
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n1)
    log "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start \
        || die "could not start PostgreSQL $version/main"
    local i
    for i in $(seq 1 60); do
        pg_isready -q -h 127.0.0.1 -p 5432 && return 0
        sleep 0.5
    done
    die "PostgreSQL does not answer on 127.0.0.1:5432"
}

ensure_redis() {
    command -v redis-cli >/dev/null 2>&1 || die "redis-cli is not installed"
    if [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null || true)" = "PONG" ]; then return 0; fi
    command -v redis-server >/dev/null 2>&1 || die "Redis is down and redis-server is not installed"
    log "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null \
        || die "could not start redis-server"
    local i
    for i in $(seq 1 60); do
        [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null || true)" = "PONG" ] && return 0
        sleep 0.5
    done
    die "Redis does not answer on 127.0.0.1:6379"
}

install_packages
check_binaries
ensure_postgres
ensure_redis
log "ok: PostgreSQL, Redis, dovecot, sshd and chromium are available"
