#!/usr/bin/env bash
# phsync AD lab: a real Samba 4.17 AD DC bound to loopback, for integration tests, CI and demos.
#
#   scripts/ad-lab/lab.sh up        # install + provision + start + seed (idempotent)
#   scripts/ad-lab/lab.sh help      # all subcommands
#
# See scripts/ad-lab/README.md. Everything lives in one data dir (PHSYNC_LAB_DIR); the DC listens
# on 127.0.0.1 only (ports 88, 135, 139, 389, 445, 464, 636, 3268, 3269, 49152+).
set -euo pipefail

# A second lab beside the shared one (e.g. bench-sync's large domains): PHSYNC_LAB_NETNS names
# a network namespace with a loopback of its own, so this DC binds the same 127.0.0.1 ports
# (and the realm, certificate and URLs stay as they are) without touching the shared DC.
# Every command re-runs inside it; the namespace is created on first use.
if [[ -n ${PHSYNC_LAB_NETNS:-} && $(ip netns identify $$ 2>/dev/null) != "$PHSYNC_LAB_NETNS" ]]; then
    if ! ip netns list | grep -qx -- "$PHSYNC_LAB_NETNS\( .*\)\?"; then
        ip netns add "$PHSYNC_LAB_NETNS"
        ip netns exec "$PHSYNC_LAB_NETNS" ip link set lo up
    fi
    exec ip netns exec "$PHSYNC_LAB_NETNS" bash "$0" "$@"
fi

# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------
LAB_DIR="${PHSYNC_LAB_DIR:-/var/tmp/phsync-ad-lab}"
LAB_DIR="${LAB_DIR%/}"
ADMIN_PASSWORD="${PHSYNC_LAB_ADMIN_PASSWORD:-Adm1n-Passw0rd!}"

REALM="PHS.TEST"
DNS_DOMAIN="phs.test"
NETBIOS_DOMAIN="PHS"
HOST_NAME="DC1"
DC_FQDN="dc1.phs.test"
HOST_IP="127.0.0.1"
BASE_DN="DC=phs,DC=test"
ADMIN_USER="Administrator"
ADMIN_UPN="Administrator@${DNS_DOMAIN}"
ADMIN_DN="CN=Administrator,CN=Users,${BASE_DN}"
USERS_CN="CN=Users,${BASE_DN}"
LDAPS_URL="ldaps://${HOST_IP}"
LDAP_URL="ldap://${HOST_IP}"

ETC_DIR="$LAB_DIR/etc"
RUN_DIR="$LAB_DIR/run"
LOG_DIR="$LAB_DIR/log"
TLS_DIR="$LAB_DIR/tls"
SMB_CONF="$ETC_DIR/smb.conf"
CA_FILE="$TLS_DIR/ca.pem"
CA_KEY="$TLS_DIR/ca.key"
CERT_FILE="$TLS_DIR/dc1.pem"
KEY_FILE="$TLS_DIR/dc1.key"
PID_FILE="$RUN_DIR/lab.pid"
SAMBA_OUT="$LOG_DIR/samba.out"
ENV_FILE="$LAB_DIR/lab.env"
ADMIN_PW_FILE="$LAB_DIR/admin.password"
SEED_FILE="$LAB_DIR/seed.tsv"
PROVISIONED_MARK="$LAB_DIR/.provisioned"
SNAPSHOT="${LAB_DIR}.tar"

PACKAGES=(samba samba-ad-provision samba-dsdb-modules samba-vfs-modules winbind ldap-utils openssl
    iproute2 procps) # iproute2: ss; procps: pgrep, ps
# TCP ports that must be free before the DC starts (checked with ss).
REQUIRED_PORTS=(88 135 389 445 636)
START_TIMEOUT=60
STOP_TIMEOUT=15

# Extended rights for DRSUAPI GetNCChanges with secrets.
GUID_REPL_GET_CHANGES="1131f6aa-9c07-11d1-f79f-00c04fc2dcd2"     # Replicating Directory Changes
GUID_REPL_GET_CHANGES_ALL="1131f6ad-9c07-11d1-f79f-00c04fc2dcd2" # Replicating Directory Changes All

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
log() { printf '[ad-lab] %s\n' "$*" >&2; }
die() {
    printf '[ad-lab] ERROR: %s\n' "$*" >&2
    exit 1
}

need_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (samba AD DC binds privileged ports)"
}

now_ms() { date +%s%3N; }

# pid of the running lab DC, or nothing. Trusts the pid file only when that process is
# /usr/sbin/samba and samba's own pid file in our run dir agrees (samba rewrites its
# command line to "samba: root process", so the cmdline cannot be checked).
lab_pid() {
    local pid exe own
    [[ -r $PID_FILE ]] || return 0
    pid=$(<"$PID_FILE")
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
    [[ ${exe##*/} == samba ]] || return 0
    if [[ -r $RUN_DIR/samba.pid ]]; then
        own=$(tr -dc '0-9' <"$RUN_DIR/samba.pid")
        [[ -z $own || $own == "$pid" ]] || return 0
    fi
    printf '%s\n' "$pid"
}

# smbd / winbindd started by the lab DC (they run in sessions of their own)
lab_children() {
    local f pid
    for f in "$RUN_DIR/smbd.pid" "$RUN_DIR/winbindd.pid"; do
        [[ -r $f ]] || continue
        pid=$(tr -dc '0-9' <"$f")
        [[ -n $pid && -r /proc/$pid/cmdline ]] || continue
        if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$SMB_CONF"; then
            printf '%s\n' "$pid"
        fi
    done
}

# alive and not a zombie (a zombie has no readable exe link)
pid_alive() { readlink "/proc/$1/exe" >/dev/null 2>&1; }

is_running() { [[ -n $(lab_pid) ]]; }

is_provisioned() { [[ -f $PROVISIONED_MARK && -f $SMB_CONF && -f $ENV_FILE ]]; }

require_provisioned() {
    is_provisioned || die "lab not provisioned in $LAB_DIR (run: $0 provision, or $0 up)"
}

# ldap client wrappers: LDAPS, CA-verified, simple bind as Administrator.
ldap_env() {
    LDAPTLS_CACERT="$CA_FILE" LDAPTLS_REQCERT=demand "$@"
}
admin_ldapsearch() {
    ldap_env ldapsearch -LLL -o ldif-wrap=no -H "$LDAPS_URL" -x -D "$ADMIN_UPN" -y "$ADMIN_PW_FILE" "$@"
}
admin_ldapmodify() {
    ldap_env ldapmodify -H "$LDAPS_URL" -x -D "$ADMIN_UPN" -y "$ADMIN_PW_FILE" "$@"
}

# samba-tool, always against our smb.conf (never /etc/samba/smb.conf).
stool() { samba-tool "$@" -s "$SMB_CONF"; }

# true when a DN exists (LDAP result 32 = noSuchObject means it does not).
dn_exists() {
    local rc=0
    admin_ldapsearch -b "$1" -s base '(objectClass=*)' 1.1 >/dev/null 2>&1 || rc=$?
    case $rc in
    0) return 0 ;;
    32) return 1 ;;
    *) die "ldapsearch for '$1' failed with LDAP result $rc" ;;
    esac
}

# DN of the object with this sAMAccountName, or nothing.
dn_of_sam() {
    admin_ldapsearch -b "$BASE_DN" "(sAMAccountName=$1)" 1.1 | sed -n 's/^dn: //p'
}

# base64 of UTF-16LE("\"password\""), the unicodePwd value.
unicode_pwd_b64() {
    printf '"%s"' "$1" | iconv -f UTF-8 -t UTF-16LE | base64 -w0
}

# Distro samba daemons must not run: they hold the ports (and nmbd broadcasts off-host).
stop_distro_services() {
    local svc pid lab names
    # A lab in its own namespace shares no ports with the host's services (and must never
    # stop the shared lab's DC, whose rewritten command line names no lab dir).
    if [[ -n ${PHSYNC_LAB_NETNS:-} ]]; then return 0; fi
    if [[ -d /run/systemd/system ]]; then
        for svc in samba-ad-dc smbd nmbd winbind samba; do
            systemctl disable --now "$svc" >/dev/null 2>&1 || true
        done
    else
        for svc in samba-ad-dc smbd nmbd winbind samba; do
            if [[ -x /etc/init.d/$svc ]]; then
                /etc/init.d/"$svc" stop >/dev/null 2>&1 || true
            fi
        done
    fi
    names="samba smbd nmbd winbindd samba-dcerpcd rpcd_classic"
    local sig sid lab_sids
    for sig in TERM KILL; do
        # sessions of our own lab DC: samba's (pid == sid) and those of its smbd and winbindd,
        # whose children rename themselves ("winbindd: domain child [PHS]") but stay in them
        lab=$(lab_pid)
        lab_sids=" $lab $(lab_children | tr '\n' ' ') "
        for svc in $names; do
            for pid in $(pgrep -x "$svc" || true); do
                sid=$(ps -o sid= -p "$pid" 2>/dev/null | tr -d ' ' || true)
                if [[ -z $sid || $lab_sids == *" $sid "* ]]; then continue; fi
                if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$LAB_DIR/"; then
                    continue
                fi
                log "stopping distro $svc (pid $pid, SIG$sig)"
                kill "-$sig" "$pid" 2>/dev/null || true
            done
        done
        if [[ $sig == TERM ]]; then sleep 1; fi
    done
}

# the PACKAGES that are not installed, one a line
missing_packages() {
    local p status
    for p in "${PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
        [[ $status == installed ]] || printf '%s\n' "$p"
    done
}

packages_installed() {
    [[ -z $(missing_packages) ]] || return 1
    command -v samba >/dev/null && command -v samba-tool >/dev/null && command -v ldapsearch >/dev/null
}

# ---------------------------------------------------------------------------------------------
# Subcommands
# ---------------------------------------------------------------------------------------------
cmd_install() {
    need_root
    if packages_installed; then
        log "packages already installed"
        stop_distro_services
        return 0
    fi
    local policy=/usr/sbin/policy-rc.d created_policy=0 rc=0 missing=()
    mapfile -t missing < <(missing_packages)
    ((${#missing[@]} > 0)) || die "packages look installed but samba/samba-tool/ldapsearch are missing"
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\n# temporary, created by phsync scripts/ad-lab/lab.sh\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        created_policy=1
    fi
    log "installing ${missing[*]}"
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -q &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
    } >&2 || rc=$?
    if ((created_policy)); then rm -f "$policy"; fi
    ((rc == 0)) || die "apt-get failed (exit $rc)"
    stop_distro_services
    packages_installed || die "packages still missing after install"
    log "install done"
}

# Set (or add) "key = value" in [global] of our smb.conf.
conf_set() {
    local key=$1 value=$2 tmp
    tmp=$(mktemp "$ETC_DIR/smb.conf.XXXXXX")
    # replace an existing "key = ..." in [global], or add the line right after "[global]"
    awk -v key="$key" -v value="$value" '
        function norm(s) { gsub(/[ \t]+/, " ", s); sub(/^ /, "", s); sub(/ $/, "", s); return tolower(s) }
        BEGIN { found = 0 }
        FNR == 1 { sec = "" }
        FNR == NR {
            if ($0 ~ /^[ \t]*\[/) { sec = tolower($0); gsub(/[][ \t]/, "", sec) }
            else if (sec == "global" && index($0, "=") > 0 && norm(substr($0, 1, index($0, "=") - 1)) == norm(key)) found = 1
            next
        }
        /^[ \t]*\[/ {
            sec = tolower($0); gsub(/[][ \t]/, "", sec); print
            if (sec == "global" && !found) print "\t" key " = " value
            next
        }
        sec == "global" && found && index($0, "=") > 0 && norm(substr($0, 1, index($0, "=") - 1)) == norm(key) {
            print "\t" key " = " value; next
        }
        { print }
    ' "$SMB_CONF" "$SMB_CONF" >"$tmp"
    chmod 0644 "$tmp"
    mv "$tmp" "$SMB_CONF"
}

make_tls() {
    mkdir -p "$TLS_DIR"
    chmod 0755 "$TLS_DIR"
    local ext="$TLS_DIR/dc1.ext" csr="$TLS_DIR/dc1.csr"
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
        -keyout "$CA_KEY" -out "$CA_FILE" -subj "/O=phsync lab/CN=phsync lab CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" >/dev/null 2>&1 || die "openssl: CA creation failed"
    openssl req -new -newkey rsa:2048 -nodes -sha256 \
        -keyout "$KEY_FILE" -out "$csr" -subj "/O=phsync lab/CN=$DC_FQDN" >/dev/null 2>&1 ||
        die "openssl: server key/CSR creation failed"
    cat >"$ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$HOST_IP,DNS:$DC_FQDN,DNS:$HOST_NAME
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EOF
    openssl x509 -req -sha256 -days 3650 -in "$csr" -CA "$CA_FILE" -CAkey "$CA_KEY" \
        -CAcreateserial -out "$CERT_FILE" -extfile "$ext" >/dev/null 2>&1 ||
        die "openssl: server certificate signing failed"
    rm -f "$csr" "$ext"
    chmod 0600 "$CA_KEY" "$KEY_FILE"
    chmod 0644 "$CA_FILE" "$CERT_FILE"
    openssl verify -CAfile "$CA_FILE" "$CERT_FILE" >/dev/null || die "openssl: server cert does not verify"
}

env_line() {
    # KEY=VALUE, quoted only when needed, so the file is both shell-sourceable and easy to parse
    if [[ $2 =~ ^[A-Za-z0-9_./:=@,+-]*$ ]]; then
        printf '%s=%s\n' "$1" "$2"
    else
        printf '%s=%q\n' "$1" "$2"
    fi
}

write_env() {
    local tmp="$ENV_FILE.tmp"
    {
        echo "# phsync AD lab (scripts/ad-lab/lab.sh). Load with: set -a; . $ENV_FILE; set +a"
        env_line PHSYNC_LAB_DIR "$LAB_DIR"
        env_line PHSYNC_LAB_REALM "$REALM"
        env_line PHSYNC_LAB_DOMAIN "$NETBIOS_DOMAIN"
        env_line PHSYNC_LAB_DNS_DOMAIN "$DNS_DOMAIN"
        env_line PHSYNC_LAB_BASE_DN "$BASE_DN"
        env_line PHSYNC_LAB_LDAPS_URL "$LDAPS_URL"
        env_line PHSYNC_LAB_LDAP_URL "$LDAP_URL"
        env_line PHSYNC_LAB_CA_FILE "$CA_FILE"
        env_line PHSYNC_LAB_ADMIN_USER "$ADMIN_USER"
        env_line PHSYNC_LAB_ADMIN_UPN "$ADMIN_UPN"
        env_line PHSYNC_LAB_ADMIN_DN "$ADMIN_DN"
        env_line PHSYNC_LAB_ADMIN_PASSWORD_FILE "$ADMIN_PW_FILE"
        env_line PHSYNC_LAB_SMB_CONF "$SMB_CONF"
        env_line PHSYNC_LAB_SEED_FILE "$SEED_FILE"
        if [[ -n ${PHSYNC_LAB_NETNS:-} ]]; then env_line PHSYNC_LAB_NETNS "$PHSYNC_LAB_NETNS"; fi
    } >"$tmp"
    chmod 0644 "$tmp"
    mv "$tmp" "$ENV_FILE"
}

cmd_provision() {
    need_root
    if is_provisioned; then
        log "already provisioned in $LAB_DIR"
        return 0
    fi
    packages_installed || die "samba packages missing (run: $0 install)"
    if [[ -e $LAB_DIR ]]; then
        is_running && die "a lab DC is running from the half-provisioned $LAB_DIR; run: $0 stop"
        log "removing incomplete lab dir $LAB_DIR"
        rm -rf -- "$LAB_DIR"
    fi
    local t0
    t0=$(now_ms)
    mkdir -p "$ETC_DIR" "$RUN_DIR" "$RUN_DIR/ncalrpc" "$RUN_DIR/ntp_signd" "$LOG_DIR"
    chmod 0755 "$LAB_DIR"
    : >"$SMB_CONF" # an EMPTY smb.conf, or provision copies the host's /etc/samba/smb.conf
    log "provisioning realm $REALM (domain $NETBIOS_DOMAIN, host $HOST_NAME) in $LAB_DIR"
    if ! samba-tool domain provision -s "$SMB_CONF" --targetdir="$LAB_DIR" \
        --realm="$REALM" --domain="$NETBIOS_DOMAIN" --server-role=dc \
        --dns-backend=SAMBA_INTERNAL --use-rfc2307 --adminpass="$ADMIN_PASSWORD" \
        --host-name="$HOST_NAME" --host-ip="$HOST_IP" \
        --option="interfaces=lo" --option="bind interfaces only=yes" \
        --option="server services=-dns -dnsupdate -nbt -wrepl -ntp_signd" \
        --option="disable netbios=yes" \
        --option="dns update command=/bin/true" --option="spn update command=/bin/true" \
        --option="pid directory=$RUN_DIR" --option="ncalrpc dir=$RUN_DIR/ncalrpc" \
        --option="ntp signd socket directory=$RUN_DIR/ntp_signd" \
        --option="log file=$LOG_DIR/log.%m" >"$LOG_DIR/provision.log" 2>&1; then
        tail -n 30 "$LOG_DIR/provision.log" >&2
        die "samba-tool domain provision failed (log: $LOG_DIR/provision.log)"
    fi

    # provision copies the host resolver as "dns forwarder" (an off-host address): drop it
    sed -i '/^[[:space:]]*dns forwarder[[:space:]]*=/d' "$SMB_CONF"
    conf_set "ldap server require strong auth" "no"

    make_tls
    conf_set "tls enabled" "yes"
    conf_set "tls cafile" "$CA_FILE"
    conf_set "tls certfile" "$CERT_FILE"
    conf_set "tls keyfile" "$KEY_FILE"
    grep -qi '^[[:space:]]*\[global\]' "$SMB_CONF" || die "no [global] section in $SMB_CONF"
    mkdir -p "$LAB_DIR/cache"
    testparm -s "$SMB_CONF" >/dev/null 2>&1 || die "testparm rejects $SMB_CONF"

    # Offline (DC not running): works directly on private/sam.ldb via the smb.conf paths.
    # max-pwd-age=0: seeded passwords never expire, so an old snapshot still works.
    stool domain passwordsettings set --min-pwd-age=0 --max-pwd-age=0 --complexity=off \
        --history-length=0 >"$LOG_DIR/passwordsettings.log" 2>&1 ||
        die "samba-tool domain passwordsettings failed (log: $LOG_DIR/passwordsettings.log)"

    (
        umask 077
        printf '%s' "$ADMIN_PASSWORD" >"$ADMIN_PW_FILE"
    )
    chmod 0600 "$ADMIN_PW_FILE"
    write_env
    date -u +%Y-%m-%dT%H:%M:%SZ >"$PROVISIONED_MARK"
    log "provisioned in $(($(now_ms) - t0)) ms; env file: $ENV_FILE"
}

# "port N held by: users:((...))" for every required port that is in use.
busy_ports() {
    local p line
    for p in "${REQUIRED_PORTS[@]}"; do
        line=$(ss -Hltnp "( sport = :$p )" 2>/dev/null | head -n 1 || true)
        if [[ -n $line ]]; then
            printf 'TCP port %s is in use: %s\n' "$p" "$(sed -E 's/.*(users:.*)$/\1/' <<<"$line")"
        fi
    done
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$HOST_IP/$1" 2>/dev/null; }

rootdse_ok() {
    admin_ldapsearch -b "" -s base '(objectClass=*)' defaultNamingContext 2>/dev/null |
        grep -qi "^defaultNamingContext: $BASE_DN\$"
}

cmd_start() {
    need_root
    require_provisioned
    local pid
    pid=$(lab_pid)
    if [[ -n $pid ]]; then
        log "already running (pid $pid)"
        return 0
    fi
    local busy
    busy=$(busy_ports)
    if [[ -n $busy ]]; then
        printf '%s\n' "$busy" >&2
        die "cannot start the lab DC: required ports are busy (another samba/AD/LDAP server?)"
    fi
    mkdir -p "$RUN_DIR/ncalrpc" "$RUN_DIR/ntp_signd" "$LOG_DIR"
    local t0
    t0=$(now_ms)
    {
        printf '=== %s starting samba\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    } >>"$SAMBA_OUT"
    # setsid: own session and process group (pgid == pid), detached from our terminal.
    # In a non-interactive script the background child is no group leader, so setsid does
    # not fork and $! is samba's own pid.
    setsid samba -F -M single -s "$SMB_CONF" >>"$SAMBA_OUT" 2>&1 </dev/null &
    pid=$!
    printf '%s\n' "$pid" >"$PID_FILE"
    local deadline=$(($(now_ms) + START_TIMEOUT * 1000)) ldap_ok=0 smb_ok=0
    while (($(now_ms) < deadline)); do
        if ! pid_alive "$pid"; then
            rm -f "$PID_FILE"
            tail -n 30 "$SAMBA_OUT" >&2
            die "samba exited during start-up (log: $SAMBA_OUT, $LOG_DIR/log.samba)"
        fi
        if ((!ldap_ok)) && rootdse_ok; then ldap_ok=1; fi
        if ((!smb_ok)) && port_open 445; then smb_ok=1; fi
        if ((ldap_ok && smb_ok)); then break; fi
        sleep 0.2
    done
    if ! ((ldap_ok && smb_ok)); then
        tail -n 30 "$SAMBA_OUT" >&2
        cmd_stop || true
        die "lab DC not ready after ${START_TIMEOUT}s (ldaps: $ldap_ok, smb 445: $smb_ok)"
    fi
    # an authenticated LDAPS search of the domain NC, certificate verified against our CA
    admin_ldapsearch -b "$BASE_DN" -s base '(objectClass=domain)' dn >/dev/null ||
        die "authenticated LDAPS search on $LDAPS_URL failed (CA $CA_FILE)"
    log "running (pid $pid), ready in $(($(now_ms) - t0)) ms: $LDAPS_URL"
}

cmd_stop() {
    local pid
    pid=$(lab_pid)
    if [[ -z $pid ]]; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    local t0 deadline
    t0=$(now_ms)
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$(($(now_ms) + STOP_TIMEOUT * 1000))
    while pid_alive "$pid" && (($(now_ms) < deadline)); do sleep 0.1; done
    if pid_alive "$pid"; then
        log "samba (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT}s: SIGKILL"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    # smbd and winbindd (own sessions) normally exit with samba: make sure none outlives it
    local i kids
    for i in $(seq 1 50); do
        kids=$(lab_children)
        [[ -z $kids ]] && break
        # shellcheck disable=SC2086 # one pid a word
        if ((i == 20)); then kill -TERM $kids 2>/dev/null || true; fi
        # shellcheck disable=SC2086
        if ((i == 40)); then kill -KILL $kids 2>/dev/null || true; fi
        sleep 0.1
    done
    rm -f "$PID_FILE"
    log "stopped (pid $pid) in $(($(now_ms) - t0)) ms"
}

cmd_status() {
    local pid
    pid=$(lab_pid)
    if [[ -n $pid ]]; then
        echo "running (pid $pid, $LDAPS_URL, data $LAB_DIR)"
        return 0
    fi
    if is_provisioned; then
        echo "stopped (provisioned in $LAB_DIR)"
    else
        echo "stopped (not provisioned)"
    fi
    return 3
}

# ---------------------------------------------------------------------------------------------
# Seed fixtures
# ---------------------------------------------------------------------------------------------
OU_SALES="OU=Sales,$BASE_DN"
OU_ENG="OU=Engineering,$BASE_DN"
OU_DEMO="OU=Demo,$BASE_DN"
GROUP_OUTER="PHS-Sync-Users"
GROUP_INNER="PHS-Sync-Inner"

# sam | password | container | kind | flags   (kind: user, inetorgperson, computer)
# flags: disabled, must-change, no-upn, replicator, member:GROUP (comma separated)
SEED_ACCOUNTS=(
    "alice|Alice-Pa55word!|$OU_SALES|user|member:$GROUP_OUTER"
    "bob|Bob-Secr3t#2024|$OU_SALES|user|"
    "carol|žluťoučký kůň1A|$OU_ENG|user|non-ascii"
    "dave|Dave-Nested-Gr0up?|$OU_ENG|user|member:$GROUP_INNER"
    "erin|Erin-Disabled-9x|$OU_SALES|user|disabled"
    "frank|Frank-No-UPN-77|$OU_ENG|user|no-upn"
    "grace|Grace-MustChange-5|$OU_SALES|user|must-change"
    "ivan|Ivan-InetOrg-P3rson|$OU_SALES|inetorgperson|"
    'WS01$|Ws01-Machine-Acct-42|'"$OU_SALES"'|computer|'
    "demo1|Demo1-Passw0rd!|$OU_DEMO|user|"
    "demo2|Demo2-Passw0rd!|$OU_DEMO|user|"
    "norights|NoRights-Plain-8|$USERS_CN|user|"
    # not "replicator": CN=Replicator,CN=Builtin (a builtin group) owns that sAMAccountName
    "phs-replicator|Repl1cate-All-Hashes!|$USERS_CN|user|replicator"
)

has_flag() { [[ ",$1," == *",$2,"* ]]; }

ensure_ou() {
    local dn=$1 name
    name=${dn%%,*}
    name=${name#OU=}
    if dn_exists "$dn"; then return 0; fi
    log "seed: OU $dn"
    admin_ldapmodify -a >/dev/null <<EOF
dn: $dn
objectClass: top
objectClass: organizationalUnit
ou: $name
EOF
}

ensure_group() {
    local sam=$1 container=$2 dn
    dn=$(dn_of_sam "$sam")
    [[ -n $dn ]] && return 0
    log "seed: group $sam"
    admin_ldapmodify -a >/dev/null <<EOF
dn: CN=$sam,$container
objectClass: top
objectClass: group
sAMAccountName: $sam
groupType: -2147483646
description: phsync lab sync-scope group
EOF
}

ensure_member() {
    local group_dn=$1 member_dn=$2 found
    found=$(admin_ldapsearch -b "$group_dn" -s base "(member=$member_dn)" 1.1 | sed -n 's/^dn: //p')
    [[ -n $found ]] && return 0
    log "seed: ${member_dn%%,*} -> ${group_dn%%,*}"
    admin_ldapmodify >/dev/null <<EOF
dn: $group_dn
changetype: modify
add: member
member: $member_dn
EOF
}

create_account() {
    local sam=$1 password=$2 container=$3 kind=$4 flags=$5 cn uac pwdlast upn_line=() oc
    cn=${sam%\$}
    case $kind in
    user) oc=$'objectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: user' ;;
    inetorgperson) oc=$'objectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: inetOrgPerson' ;;
    *) die "create_account: bad kind $kind" ;;
    esac
    uac=512
    has_flag "$flags" disabled && uac=514
    if ! has_flag "$flags" no-upn; then upn_line=("userPrincipalName: $sam@$DNS_DOMAIN"); fi
    log "seed: $kind $sam in $container${flags:+ ($flags)}"
    {
        printf 'dn: CN=%s,%s\n%s\n' "$cn" "$container" "$oc"
        printf 'cn: %s\nsAMAccountName: %s\n' "$cn" "$sam"
        [[ ${#upn_line[@]} -gt 0 ]] && printf '%s\n' "${upn_line[@]}"
        printf 'givenName: %s\nsn: Lab\ndisplayName: %s Lab\n' "${cn^}" "${cn^}"
        [[ $kind == inetorgperson ]] && printf 'mail: %s@%s\nemployeeNumber: 1001\n' "$sam" "$DNS_DOMAIN"
        printf 'description: phsync lab fixture\n'
        printf 'unicodePwd:: %s\n' "$(unicode_pwd_b64 "$password")"
        printf 'userAccountControl: %s\n' "$uac"
    } | admin_ldapmodify -a >/dev/null
    if has_flag "$flags" must-change; then
        pwdlast=0
        admin_ldapmodify >/dev/null <<EOF
dn: CN=$cn,$container
changetype: modify
replace: pwdLastSet
pwdLastSet: $pwdlast
EOF
    fi
}

create_computer() {
    local sam=$1 password=$2 container=$3 name
    name=${sam%\$}
    log "seed: computer $sam in $container"
    stool computer create "$name" --computerou="${container%,"$BASE_DN"}" \
        --description="phsync lab fixture" >/dev/null
    # a known machine password (samba-tool sets a random one), then enable the account:
    # samba-tool leaves it disabled (userAccountControl 4098), a joined machine has 4096
    admin_ldapmodify >/dev/null <<EOF
dn: CN=$name,$container
changetype: modify
replace: unicodePwd
unicodePwd:: $(unicode_pwd_b64 "$password")
-
replace: userAccountControl
userAccountControl: 4096
EOF
}

# string SID (S-1-5-21-...) of the object with this DN, decoded from the binary objectSid
sid_of_dn() {
    local b64 bytes n auth i sid
    b64=$(admin_ldapsearch -b "$1" -s base '(objectClass=*)' objectSid | sed -n 's/^objectSid:: //p')
    [[ -n $b64 ]] || return 0
    read -r -a bytes <<<"$(base64 -d <<<"$b64" | od -An -v -tu1 | tr -s ' \n' '  ')"
    n=${bytes[1]}
    auth=0
    for i in 2 3 4 5 6 7; do auth=$((auth * 256 + bytes[i])); done
    sid="S-${bytes[0]}-$auth"
    for ((i = 0; i < n; i++)); do
        sid+="-$((bytes[8 + 4 * i] + bytes[9 + 4 * i] * 256 + bytes[10 + 4 * i] * 65536 + bytes[11 + 4 * i] * 16777216))"
    done
    printf '%s\n' "$sid"
}

ensure_replication_rights() {
    local dn=$1 sid sddl current
    sid=$(sid_of_dn "$dn")
    [[ $sid == S-1-5-21-* ]] || die "could not read objectSid of $dn"
    current=$(stool dsacl get --objectdn="$BASE_DN" 2>/dev/null)
    if [[ $current == *"(OA;;CR;$GUID_REPL_GET_CHANGES;;$sid)"* &&
        $current == *"(OA;;CR;$GUID_REPL_GET_CHANGES_ALL;;$sid)"* ]]; then
        return 0
    fi
    log "seed: granting Replicating Directory Changes (+All) on $BASE_DN to $sid"
    sddl="(OA;;CR;$GUID_REPL_GET_CHANGES;;$sid)(OA;;CR;$GUID_REPL_GET_CHANGES_ALL;;$sid)"
    stool dsacl set --objectdn="$BASE_DN" --sddl="$sddl" >/dev/null
}

cmd_seed() {
    need_root
    require_provisioned
    is_running || cmd_start
    local t0
    t0=$(now_ms)
    ensure_ou "$OU_SALES"
    ensure_ou "$OU_ENG"
    ensure_ou "$OU_DEMO"
    ensure_group "$GROUP_OUTER" "$USERS_CN"
    ensure_group "$GROUP_INNER" "$USERS_CN"

    # one search for all existing fixture accounts
    local filter="(|" entry sam password container kind flags
    for entry in "${SEED_ACCOUNTS[@]}"; do
        IFS='|' read -r sam _ _ _ _ <<<"$entry"
        filter+="(sAMAccountName=${sam})"
    done
    filter+=")"
    local existing
    existing=$(admin_ldapsearch -b "$BASE_DN" "$filter" sAMAccountName | sed -n 's/^sAMAccountName: //p')

    for entry in "${SEED_ACCOUNTS[@]}"; do
        IFS='|' read -r sam password container kind flags <<<"$entry"
        if grep -qixF -- "$sam" <<<"$existing"; then continue; fi
        case $kind in
        computer) create_computer "$sam" "$password" "$container" ;;
        *) create_account "$sam" "$password" "$container" "$kind" "$flags" ;;
        esac
    done

    # post-conditions that hold however the objects came to be
    local outer_dn inner_dn dn upn
    outer_dn=$(dn_of_sam "$GROUP_OUTER")
    inner_dn=$(dn_of_sam "$GROUP_INNER")
    ensure_member "$outer_dn" "$inner_dn"
    for entry in "${SEED_ACCOUNTS[@]}"; do
        IFS='|' read -r sam password container kind flags <<<"$entry"
        dn=$(dn_of_sam "$sam")
        [[ -n $dn ]] || die "seed: $sam missing after creation"
        [[ ${dn,,} == *",${container,,}" ]] || die "seed: $sam is $dn, expected under $container"
        if has_flag "$flags" "member:$GROUP_OUTER"; then ensure_member "$outer_dn" "$dn"; fi
        if has_flag "$flags" "member:$GROUP_INNER"; then ensure_member "$inner_dn" "$dn"; fi
        if has_flag "$flags" no-upn; then
            upn=$(admin_ldapsearch -b "$dn" -s base '(objectClass=*)' userPrincipalName |
                sed -n 's/^userPrincipalName: //p')
            if [[ -n $upn ]]; then
                log "seed: removing userPrincipalName of $sam"
                admin_ldapmodify >/dev/null <<EOF
dn: $dn
changetype: modify
delete: userPrincipalName
EOF
            fi
        fi
        if has_flag "$flags" replicator; then ensure_replication_rights "$dn"; fi
    done

    write_seed_file
    log "seed done in $(($(now_ms) - t0)) ms; fixtures: $SEED_FILE"
}

write_seed_file() {
    local tmp="$SEED_FILE.tmp" entry sam password container kind flags upn fl
    (
        umask 077
        {
            printf '#sam\tpassword\tupn\tou\tflags\n'
            for entry in "${SEED_ACCOUNTS[@]}"; do
                IFS='|' read -r sam password container kind flags <<<"$entry"
                upn="$sam@$DNS_DOMAIN"
                has_flag "$flags" no-upn && upn=""
                [[ $kind == computer ]] && upn=""
                fl="$kind"
                [[ -n $flags ]] && fl+=",$flags"
                printf '%s\t%s\t%s\t%s\t%s\n' "$sam" "$password" "$upn" "$container" "$fl"
            done
        } >"$tmp"
    )
    chmod 0600 "$tmp"
    mv "$tmp" "$SEED_FILE"
}

# ---------------------------------------------------------------------------------------------
# Check: the running lab behaves as the fixtures promise
# ---------------------------------------------------------------------------------------------
CHECK_OK=0
CHECK_BAD=0
check_result() { # name ok|fail detail
    if [[ $2 == ok ]]; then
        CHECK_OK=$((CHECK_OK + 1))
        printf '  ok    %s\n' "$1"
    else
        CHECK_BAD=$((CHECK_BAD + 1))
        printf '  FAIL  %s: %s\n' "$1" "$3"
    fi
}

# simple bind over LDAPS; prints "ok" or the AD "data XXX" code (or the error text)
bind_result() {
    local err
    if err=$(ldap_env ldapsearch -LLL -H "$LDAPS_URL" -x -D "$1" -w "$2" -b "" -s base 1.1 2>&1 >/dev/null); then
        echo ok
    elif [[ $err =~ data\ ([0-9a-f]+) ]]; then
        echo "data ${BASH_REMATCH[1]}"
    else
        echo "${err//$'\n'/ }"
    fi
}

expect_bind() { # name binddn password expected
    local got
    got=$(bind_result "$2" "$3")
    if [[ $got == "$4" ]]; then check_result "$1" ok; else check_result "$1" fail "expected '$4', got '$got'"; fi
}

# DRSUAPI GetNCChanges on the domain NC with samba's python bindings:
# prints "ok <objects> <objects with unicodePwd>" or "error <text>"
drs_probe() {
    SMB_CONF="$SMB_CONF" BASE_DN="$BASE_DN" DOMAIN="$NETBIOS_DOMAIN" HOST="$HOST_IP" \
        PROBE_USER="$1" PROBE_PASSWORD="$2" /usr/bin/python3 - <<'PY' 2>&1 | tail -n 1
import os, uuid
from samba import drs_utils
from samba.credentials import Credentials, DONT_USE_KERBEROS
from samba.param import LoadParm
from samba.dcerpc import drsuapi, misc
lp = LoadParm(); lp.load(os.environ["SMB_CONF"])
c = Credentials(); c.guess(lp)
c.set_username(os.environ["PROBE_USER"]); c.set_password(os.environ["PROBE_PASSWORD"])
c.set_domain(os.environ["DOMAIN"]); c.set_kerberos_state(DONT_USE_KERBEROS)
try:
    drs, handle, _ = drs_utils.drsuapi_connect(os.environ["HOST"], lp, c)
    req = drsuapi.DsGetNCChangesRequest8()
    req.destination_dsa_guid = misc.GUID(str(uuid.uuid4()))
    req.source_dsa_invocation_id = misc.GUID()
    req.naming_context = drsuapi.DsReplicaObjectIdentifier()
    req.naming_context.dn = os.environ["BASE_DN"]
    req.highwatermark = drsuapi.DsReplicaHighWaterMark()
    req.highwatermark.tmp_highest_usn = req.highwatermark.reserved_usn = req.highwatermark.highest_usn = 0
    req.uptodateness_vector = None
    req.replica_flags = (drsuapi.DRSUAPI_DRS_INIT_SYNC | drsuapi.DRSUAPI_DRS_PER_SYNC |
                         drsuapi.DRSUAPI_DRS_GET_ANC | drsuapi.DRSUAPI_DRS_NEVER_SYNCED |
                         drsuapi.DRSUAPI_DRS_WRIT_REP)
    req.max_object_count = 1000; req.max_ndr_size = 402116
    req.extended_op = 0; req.fsmo_info = 0
    req.partial_attribute_set = None; req.partial_attribute_set_ex = None
    req.mapping_ctr.num_mappings = 0; req.mapping_ctr.mappings = None
    _, ctr = drs.DsGetNCChanges(handle, 8, req)
    n = secrets = 0; o = ctr.first_object
    while o:
        n += 1
        for a in o.object.attribute_ctr.attributes:
            if a.attid == drsuapi.DRSUAPI_ATTID_unicodePwd and a.value_ctr.num_values:
                secrets += 1
        o = o.next_object
    print("ok", n, secrets)
except Exception as e:
    print("error", e)
PY
}

cmd_check() {
    require_provisioned
    is_running || die "lab DC not running (run: $0 start)"
    [[ -f $SEED_FILE ]] || die "not seeded (run: $0 seed)"
    local sam password upn flags expected got members
    echo "ad-lab check ($LDAPS_URL, CA $CA_FILE)"
    expect_bind "admin bind ($ADMIN_UPN)" "$ADMIN_UPN" "$ADMIN_PASSWORD" ok
    local line
    while IFS= read -r line; do
        [[ $line == \#* || -z $line ]] && continue
        # tab is IFS whitespace (runs of tabs collapse): split on a non-whitespace separator
        IFS=$'\x1f' read -r sam password upn _ flags <<<"${line//$'\t'/$'\x1f'}"
        expected=ok
        has_flag "$flags" disabled && expected="data 533"
        has_flag "$flags" must-change && expected="data 773"
        expect_bind "bind $NETBIOS_DOMAIN\\$sam" "$NETBIOS_DOMAIN\\$sam" "$password" "$expected"
        if [[ -n $upn ]]; then expect_bind "bind $upn" "$upn" "$password" "$expected"; fi
    done <"$SEED_FILE"
    expect_bind "wrong password is data 52e" "alice@$DNS_DOMAIN" "not-the-password" "data 52e"
    got=$(admin_ldapsearch -b "$BASE_DN" "(&(sAMAccountName=frank)(userPrincipalName=*))" 1.1 | grep -c '^dn:' || true)
    if [[ $got == 0 ]]; then check_result "frank has no userPrincipalName" ok; else check_result "frank has no userPrincipalName" fail "it has one"; fi
    members=$(admin_ldapsearch -b "$BASE_DN" \
        "(&(objectCategory=person)(memberOf:1.2.840.113556.1.4.1941:=CN=$GROUP_OUTER,$USERS_CN))" \
        sAMAccountName | sed -n 's/^sAMAccountName: //p' | sort | tr '\n' ' ')
    if [[ $members == "alice dave " ]]; then
        check_result "transitive members of $GROUP_OUTER are alice, dave" ok
    else
        check_result "transitive members of $GROUP_OUTER are alice, dave" fail "got: $members"
    fi
    got=$(drs_probe phs-replicator "$(awk -F'\t' '$1 == "phs-replicator" { print $2 }' "$SEED_FILE")")
    if [[ $got =~ ^ok\ [0-9]+\ ([0-9]+)$ ]] && ((BASH_REMATCH[1] > 0)); then
        check_result "phs-replicator: DRSUAPI GetNCChanges returns secrets ($got)" ok
    else
        check_result "phs-replicator: DRSUAPI GetNCChanges returns secrets" fail "$got"
    fi
    got=$(drs_probe norights "$(awk -F'\t' '$1 == "norights" { print $2 }' "$SEED_FILE")")
    if [[ $got == *WERR_DS_DRA_ACCESS_DENIED* ]]; then
        check_result "norights: DRSUAPI GetNCChanges denied" ok
    else
        check_result "norights: DRSUAPI GetNCChanges denied" fail "$got"
    fi
    if ((CHECK_BAD > 0)); then
        echo "ad-lab check: $CHECK_BAD of $((CHECK_OK + CHECK_BAD)) checks FAILED"
        return 1
    fi
    echo "ad-lab check: all $CHECK_OK checks ok"
}

# ---------------------------------------------------------------------------------------------
# Lifecycle
# ---------------------------------------------------------------------------------------------
cmd_reset() {
    need_root
    cmd_stop
    log "removing $LAB_DIR"
    rm -rf -- "$LAB_DIR"
    cmd_provision
    cmd_start
    cmd_seed
}

# tar options that keep samba's NT ACLs (security.NTACL xattrs) and POSIX ACLs on sysvol
TAR_OPTS=(--xattrs --xattrs-include='*' --acls --numeric-owner --warning=no-file-ignored)

cmd_snapshot() {
    need_root
    require_provisioned
    local was_running=0 t0
    is_running && was_running=1
    ((was_running)) && cmd_stop
    t0=$(now_ms)
    tar -C "$(dirname "$LAB_DIR")" "${TAR_OPTS[@]}" -cf "$SNAPSHOT.tmp" "$(basename "$LAB_DIR")"
    mv "$SNAPSHOT.tmp" "$SNAPSHOT"
    log "snapshot $SNAPSHOT written in $(($(now_ms) - t0)) ms ($(du -h "$SNAPSHOT" | cut -f1))"
    if ((was_running)); then cmd_start; fi
}

cmd_restore() {
    need_root
    [[ -f $SNAPSHOT ]] || die "no snapshot $SNAPSHOT (run: $0 snapshot)"
    local t0
    cmd_stop
    t0=$(now_ms)
    rm -rf -- "$LAB_DIR"
    mkdir -p "$(dirname "$LAB_DIR")"
    tar -C "$(dirname "$LAB_DIR")" "${TAR_OPTS[@]}" -xpf "$SNAPSHOT"
    rm -f "$PID_FILE"
    is_provisioned || die "snapshot $SNAPSHOT did not hold a provisioned lab"
    log "restored $LAB_DIR from $SNAPSHOT in $(($(now_ms) - t0)) ms (DC stopped)"
}

cmd_up() {
    need_root
    local t0
    t0=$(now_ms)
    packages_installed || cmd_install
    is_provisioned || cmd_provision
    cmd_start
    cmd_seed
    log "up in $(($(now_ms) - t0)) ms; env: $ENV_FILE"
}

cmd_env() {
    require_provisioned
    sed -n 's/^\(PHSYNC_LAB_[A-Z_]*=\)/export \1/p' "$ENV_FILE"
}

usage() {
    cat <<EOF
usage: $0 COMMAND

  up        install (if needed) + provision (if needed) + start + seed
  install   apt-get install the samba AD DC packages (distro services kept stopped)
  provision provision realm $REALM into \$PHSYNC_LAB_DIR ($LAB_DIR)
  start     start the DC (loopback only) and wait until LDAPS answers
  stop      stop the DC
  status    print running/stopped; exit 0 when running, 3 when stopped
  seed      create the fixture OUs, groups and accounts (idempotent); writes seed.tsv
  reset     stop, wipe, provision, start, seed
  snapshot  tar the stopped lab dir to $SNAPSHOT
  restore   replace the lab dir with $SNAPSHOT (DC left stopped)
  check     verify the running lab: every fixture bind, nested groups, DRSUAPI rights
  env       print 'export ...' lines of lab.env (eval "\$($0 env)")
EOF
}

main() {
    local cmd=${1:-help}
    case $cmd in
    install) cmd_install ;;
    provision) cmd_provision ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    seed) cmd_seed ;;
    reset) cmd_reset ;;
    snapshot) cmd_snapshot ;;
    restore) cmd_restore ;;
    up) cmd_up ;;
    env) cmd_env ;;
    check) cmd_check ;;
    help | -h | --help) usage ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
}

main "$@"
