#!/usr/bin/env bash
# phsync PostgreSQL lab: a private PostgreSQL server (Debian packages) on 127.0.0.1, for tests and CI.
#
#   scripts/pg-lab/pg.sh up                 # install (if needed) + init (first time) + start
#   eval "$(scripts/pg-lab/pg.sh env)"      # export PHSYNC_TEST_POSTGRES=postgres://...
#   scripts/pg-lab/pg.sh help               # all subcommands
#
# Everything lives in one dir (PHSYNC_PG_DIR). The server runs as the `postgres` system user,
# listens on 127.0.0.1:54329 only (plus a unix socket in $PHSYNC_PG_DIR/run) and needs no
# systemd; it leaves Debian's default cluster (port 5432) alone.
set -euo pipefail

# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------
LAB_DIR="${PHSYNC_PG_DIR:-/var/tmp/phsync-pg}"
LAB_DIR="${LAB_DIR%/}"
PORT="${PHSYNC_PG_PORT:-54329}"
HOST_IP="127.0.0.1"
ROLE="phsync"
DATABASE="phsync"
PG_USER="postgres" # OS user that owns the cluster (created by postgresql-common)

DATA_DIR="$LAB_DIR/data"
RUN_DIR="$LAB_DIR/run" # unix socket
LOG_DIR="$LAB_DIR/log"
LOG_FILE="$LOG_DIR/postgresql.log"
PW_FILE="$LAB_DIR/password"
ENV_FILE="$LAB_DIR/pg.env"
LAB_CONF="phsync.conf" # our settings, in $DATA_DIR, included from postgresql.conf
ENV_VAR="PHSYNC_TEST_POSTGRES"
PW_LEN=32
START_TIMEOUT=60
STOP_TIMEOUT=60

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
log() { printf '[pg-lab] %s\n' "$*" >&2; }
die() {
    printf '[pg-lab] ERROR: %s\n' "$*" >&2
    exit 1
}

need_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (installs packages, runs the server as '$PG_USER')"
}

now_ms() { date +%s%3N; }

# Run a command as the postgres user, from / (it cannot read root's cwd), with a locale that exists.
as_pg() { (cd / && LC_ALL=C runuser -u "$PG_USER" -- "$@"); }

# bin dir of the highest installed PostgreSQL major that has initdb and pg_ctl, or nothing
newest_pg_bin() {
    local d best=""
    while IFS= read -r d; do
        [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]] && best=$d
    done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V)
    printf '%s' "$best"
}

# bin dir to run the cluster with: the one matching an existing data dir's major, else the newest
pg_bin() {
    local ver
    if [[ -f $DATA_DIR/PG_VERSION ]]; then
        ver=$(<"$DATA_DIR/PG_VERSION")
        [[ -x /usr/lib/postgresql/$ver/bin/pg_ctl ]] ||
            die "$DATA_DIR is a PostgreSQL $ver cluster but PostgreSQL $ver is not installed (run: $0 reset)"
        printf '%s' "/usr/lib/postgresql/$ver/bin"
    else
        newest_pg_bin
    fi
}

require_installed() {
    [[ -n $(newest_pg_bin) ]] || die "PostgreSQL server not installed (run: $0 install)"
}

# pid of our running postmaster, or nothing. The pid file is trusted only when that process is
# a postgres binary serving our data dir (after a container restart the pid may be reused).
pg_pid() {
    local pid exe
    [[ -r $DATA_DIR/postmaster.pid ]] || return 0
    pid=$(head -n 1 "$DATA_DIR/postmaster.pid")
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
    [[ ${exe##*/} == postgres || ${exe##*/} == "postgres (deleted)" ]] || return 0 # deleted: upgraded
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-D $DATA_DIR " || return 0
    printf '%s\n' "$pid"
}

is_running() { [[ -n $(pg_pid) ]]; }

is_initialized() { [[ -f $DATA_DIR/PG_VERSION ]]; }

url() { printf 'postgres://%s:%s@%s:%s/%s' "$ROLE" "$1" "$HOST_IP" "$PORT" "$DATABASE"; }

# URL from the env file (what the tests use)
env_url() {
    [[ -f $ENV_FILE ]] || die "no env file $ENV_FILE (run: $0 up)"
    [[ -r $ENV_FILE ]] || die "cannot read $ENV_FILE (mode 0600, owned by root)"
    sed -n "s/^$ENV_VAR=//p" "$ENV_FILE"
}

fail_with_log() { # message
    if [[ -s $LOG_FILE ]]; then tail -n 20 "$LOG_FILE" >&2; fi
    die "$1 (log: $LOG_FILE)"
}

# "port P is in use: <process>" when something already listens on our TCP port
port_busy() {
    command -v ss >/dev/null || return 0
    local line
    line=$(ss -Hltnp "sport = :$PORT" 2>/dev/null | head -n 1)
    if [[ -n $line ]]; then printf 'port %s is in use: %s' "$PORT" "$(sed -E 's/.*(users:.*)$/\1/' <<<"$line")"; fi
}

# superuser psql over the unix socket (peer auth as the postgres OS user)
su_psql() {
    as_pg "$(pg_bin)/psql" -X -q -v ON_ERROR_STOP=1 -h "$RUN_DIR" -p "$PORT" -d postgres
}

# ---------------------------------------------------------------------------------------------
# Subcommands
# ---------------------------------------------------------------------------------------------
cmd_install() {
    need_root
    local bin
    bin=$(newest_pg_bin)
    if [[ -n $bin ]]; then
        log "already installed: PostgreSQL $(basename "$(dirname "$bin")") ($bin)"
        return 0
    fi
    # policy-rc.d 101: dpkg must not start Debian's default cluster (we never use it)
    local policy=/usr/sbin/policy-rc.d created_policy=0 rc=0 t0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\n# temporary, created by phsync scripts/pg-lab/pg.sh\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        created_policy=1
    fi
    t0=$(now_ms)
    mkdir -p "$LOG_DIR"
    log "installing postgresql (apt-get; log: $LOG_DIR/apt.log)"
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -q &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold postgresql
    } >"$LOG_DIR/apt.log" 2>&1 || rc=$?
    if ((created_policy)); then rm -f "$policy"; fi
    if ((rc != 0)); then
        tail -n 20 "$LOG_DIR/apt.log" >&2
        die "apt-get install postgresql failed (exit $rc; log: $LOG_DIR/apt.log)"
    fi
    bin=$(newest_pg_bin)
    [[ -n $bin ]] || die "postgresql installed but no initdb/pg_ctl under /usr/lib/postgresql/*/bin"
    id -u "$PG_USER" >/dev/null 2>&1 || die "postgresql installed but there is no '$PG_USER' user"
    log "installed PostgreSQL $(basename "$(dirname "$bin")") in $(($(now_ms) - t0)) ms"
}

# First time only: initdb.
init_cluster() {
    local bin locale=C
    bin=$(pg_bin)
    if [[ -e $DATA_DIR && ! -f $DATA_DIR/PG_VERSION ]]; then
        log "removing incomplete data dir $DATA_DIR"
        rm -rf -- "$DATA_DIR"
    fi
    install -d -o "$PG_USER" -g "$PG_USER" -m 0700 "$DATA_DIR" # $LAB_DIR is root's
    if locale -a 2>/dev/null | grep -qix 'c.utf-\?8'; then locale=C.UTF-8; fi
    log "initdb $DATA_DIR (PostgreSQL $(basename "$(dirname "$bin")"), locale $locale)"
    if ! as_pg "$bin/initdb" -D "$DATA_DIR" -U postgres --encoding=UTF8 --locale="$locale" \
        --auth-local=peer --auth-host=scram-sha-256 >"$LOG_DIR/initdb.log" 2>&1; then
        tail -n 20 "$LOG_DIR/initdb.log" >&2
        die "initdb of $DATA_DIR failed (log: $LOG_DIR/initdb.log)"
    fi
}

# Every start: our pg_hba.conf and settings (phsync.conf, included from postgresql.conf).
configure_cluster() {
    # only these two ways in: peer on the socket, SCRAM over TCP from 127.0.0.1
    cat >"$DATA_DIR/pg_hba.conf" <<'EOF'
# phsync pg-lab (scripts/pg-lab/pg.sh)
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  peer
host    all       all   127.0.0.1/32   scram-sha-256
EOF
    if ! grep -qxF "include '$LAB_CONF'" "$DATA_DIR/postgresql.conf"; then
        printf "\n# phsync pg-lab settings\ninclude '%s'\n" "$LAB_CONF" >>"$DATA_DIR/postgresql.conf"
    fi
    cat >"$DATA_DIR/$LAB_CONF" <<EOF
# phsync pg-lab (scripts/pg-lab/pg.sh); rewritten on every start
listen_addresses = '$HOST_IP'
port = $PORT
unix_socket_directories = '$RUN_DIR'
max_connections = 200
shared_buffers = 128MB
password_encryption = scram-sha-256
fsync = on
synchronous_commit = on
full_page_writes = on
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
EOF
    chown "$PG_USER:" "$DATA_DIR/pg_hba.conf" "$DATA_DIR/$LAB_CONF"
    chmod 0600 "$DATA_DIR/pg_hba.conf" "$DATA_DIR/$LAB_CONF"
}

# random [A-Za-z0-9]{32} (no URL encoding needed)
new_password() {
    local pw
    pw=$(head -c 1024 /dev/urandom | LC_ALL=C tr -dc 'A-Za-z0-9')
    ((${#pw} >= PW_LEN)) || die "could not generate a password from /dev/urandom"
    printf '%s' "${pw:0:PW_LEN}"
}

# Role phsync (LOGIN CREATEDB, password from $PW_FILE) and database phsync; then the env file.
ensure_role() {
    local pw
    if [[ -s $PW_FILE ]]; then
        pw=$(<"$PW_FILE")
        [[ $pw =~ ^[A-Za-z0-9]+$ ]] || die "$PW_FILE must hold only [A-Za-z0-9] (delete it to regenerate)"
    else
        pw=$(new_password)
        (umask 077 && printf '%s\n' "$pw" >"$PW_FILE.tmp")
        mv "$PW_FILE.tmp" "$PW_FILE"
        log "generated password for role $ROLE ($PW_FILE)"
    fi
    chmod 0600 "$PW_FILE"
    # SQL on stdin, so the password never shows in a process list; ALTER keeps it in sync
    if ! su_psql >/dev/null 2>"$LOG_DIR/role.err" <<EOF; then
SELECT 'CREATE ROLE $ROLE' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$ROLE') \gexec
ALTER ROLE $ROLE LOGIN CREATEDB NOSUPERUSER PASSWORD '$pw';
SELECT 'CREATE DATABASE $DATABASE OWNER $ROLE' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$DATABASE') \gexec
EOF
        die "creating role/database $ROLE failed: $(tr '\n' ' ' <"$LOG_DIR/role.err") (log: $LOG_FILE)"
    fi
    rm -f "$LOG_DIR/role.err"
    (umask 077 && printf '%s=%s\n' "$ENV_VAR" "$(url "$pw")" >"$ENV_FILE.tmp")
    mv "$ENV_FILE.tmp" "$ENV_FILE"
    chmod 0600 "$ENV_FILE"
}

cmd_start() {
    need_root
    require_installed
    local pid t0 bin busy
    pid=$(pg_pid)
    if [[ -n $pid ]]; then
        log "already running (pid $pid, $HOST_IP:$PORT)"
        ensure_role
        return 0
    fi
    t0=$(now_ms)
    mkdir -p "$LAB_DIR"
    chmod 0755 "$LAB_DIR"
    install -d -o "$PG_USER" -g "$PG_USER" -m 0755 "$RUN_DIR" "$LOG_DIR"
    busy=$(port_busy)
    [[ -z $busy ]] || die "cannot start PostgreSQL: $busy (log: $LOG_FILE)"
    is_initialized || init_cluster
    configure_cluster
    # a stale pid file (dead or reused pid) would make pg_ctl refuse or misreport
    rm -f "$DATA_DIR/postmaster.pid" "$RUN_DIR/.s.PGSQL.$PORT" "$RUN_DIR/.s.PGSQL.$PORT.lock"
    bin=$(pg_bin)
    # setsid: the postmaster gets its own session, detached from the caller's terminal/job
    if ! LC_ALL=C setsid -w runuser -u "$PG_USER" -- sh -c 'cd / && exec "$@"' pg_ctl \
        "$bin/pg_ctl" start -D "$DATA_DIR" -l "$LOG_FILE" -w -t "$START_TIMEOUT" -s >&2; then
        fail_with_log "PostgreSQL did not start on $HOST_IP:$PORT within ${START_TIMEOUT}s"
    fi
    pid=$(pg_pid)
    [[ -n $pid ]] || fail_with_log "pg_ctl reported success but no postmaster is running"
    ensure_role
    log "running (pid $pid) on $HOST_IP:$PORT, ready in $(($(now_ms) - t0)) ms; env: $ENV_FILE"
}

cmd_stop() {
    need_root
    local pid t0
    pid=$(pg_pid)
    if [[ -z $pid ]]; then
        log "not running"
        return 0
    fi
    t0=$(now_ms)
    as_pg "$(pg_bin)/pg_ctl" stop -D "$DATA_DIR" -m fast -w -t "$STOP_TIMEOUT" -s ||
        fail_with_log "pg_ctl stop (pid $pid) failed"
    log "stopped (pid $pid) in $(($(now_ms) - t0)) ms"
}

cmd_status() {
    need_root # the data dir (postmaster.pid) is readable by postgres only
    local pid
    pid=$(pg_pid)
    if [[ -n $pid ]]; then
        echo "running (pid $pid, $HOST_IP:$PORT, data $DATA_DIR)"
        return 0
    fi
    if is_initialized; then echo "stopped (cluster in $DATA_DIR)"; else echo "stopped (no cluster)"; fi
    return 1
}

cmd_check() {
    need_root
    local u out rc=0 db
    u=$(env_url)
    [[ -n $u ]] || die "no $ENV_VAR line in $ENV_FILE (run: $0 up)"
    is_running || die "PostgreSQL not running (run: $0 start; log: $LOG_FILE)"
    out=$(PGCONNECT_TIMEOUT=5 "$(pg_bin)/psql" "$u" -X -tAq -c 'select 1' 2>&1) || rc=$?
    [[ $rc -eq 0 && $out == 1 ]] ||
        die "psql over TCP to $HOST_IP:$PORT as $ROLE failed: ${out//$'\n'/ } (log: $LOG_FILE)"
    # what the tests do: a throw-away database (needs CREATEDB)
    db="phsync_check_$$"
    out=$(PGCONNECT_TIMEOUT=5 "$(pg_bin)/psql" "$u" -X -q -v ON_ERROR_STOP=1 \
        -c "CREATE DATABASE $db" -c "DROP DATABASE $db" 2>&1) ||
        die "CREATE/DROP DATABASE as $ROLE failed: ${out//$'\n'/ } (log: $LOG_FILE)"
    echo "pg-lab check: ok (select 1 and CREATE/DROP DATABASE as $ROLE on $HOST_IP:$PORT)"
}

cmd_env() {
    local u
    u=$(env_url)
    [[ -n $u ]] || die "no $ENV_VAR line in $ENV_FILE (run: $0 up)"
    printf 'export %s=%s\n' "$ENV_VAR" "$u"
}

cmd_reset() {
    need_root
    # stop even when the pid file is all that is left
    if is_running; then cmd_stop; fi
    log "removing $LAB_DIR"
    rm -rf -- "$LAB_DIR"
}

cmd_up() {
    need_root
    local t0
    t0=$(now_ms)
    [[ -n $(newest_pg_bin) ]] || cmd_install
    cmd_start
    log "up in $(($(now_ms) - t0)) ms"
}

usage() {
    cat <<EOF
usage: $0 COMMAND

  up        install (if needed) + start (start is the same)
  install   apt-get install postgresql (only when no /usr/lib/postgresql/*/bin/initdb)
  start     initdb (first time) + start on $HOST_IP:$PORT; ensure role/db $ROLE; write $ENV_FILE
  stop      stop the server (pg_ctl stop -m fast)
  status    print running/stopped; exit 0 when running, 1 when not
  check     psql over TCP with the env URL: select 1, CREATE/DROP DATABASE
  env       print 'export $ENV_VAR=...' (eval "\$($0 env)")
  reset     stop and delete $LAB_DIR

  env overrides: PHSYNC_PG_DIR ($LAB_DIR), PHSYNC_PG_PORT ($PORT)
EOF
}

main() {
    local cmd=${1:-help}
    case $cmd in
    install) cmd_install ;;
    start | up) cmd_up ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    check) cmd_check ;;
    env) cmd_env ;;
    reset) cmd_reset ;;
    help | -h | --help) usage ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
}

main "$@"
