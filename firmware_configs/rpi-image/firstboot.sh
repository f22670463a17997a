#!/bin/bash
# edgepose first-boot installer for Raspberry Pi OS (Bookworm and later) and other Debian-based boards.
#
# `edgepose flash` puts an `edgepose bundle` on the boot partition as /boot/firmware/edgepose/ and has
# this run once, as root: from cloud-init (rpi-image/user-data) or from edgepose-firstboot.service
# (images without cloud-init). It
#   0. checks every file of the bundle against its MANIFEST.sha256,
#   1. installs the Debian packages of apt-packages.txt that the image lacks (python3-venv, python3-picamera2
#      on a Pi camera profile; libedgetpu1-std from Coral's repository for Coral profiles) - the only step
#      that may need the network,
#   2. creates the system user `edgepose`,
#   3. creates /opt/edgepose/venv with --system-site-packages (so apt's picamera2 is importable) and installs
#      the bundled edgepose wheel with `pip install --no-index --find-links wheels/` (offline),
#   4. writes /etc/edgepose/{device.toml,board.toml,boards/,edgepose.env} (never overwriting device.toml)
#      and the bundled models into /var/cache/edgepose/models/,
#   5. validates the merged config, installs and enables edgepose.service,
#   6. marks the device provisioned with this bundle (/var/lib/edgepose/.provisioned) so later boots skip all
#      this; a card flashed again with another bundle provisions again and keeps /var/lib/edgepose.
#
# Settings (environment, or install.env next to device.toml on the boot partition):
#   EDGEPOSE_BOARD       profile name (default: detected, python -m edgepose.profiles detect)
#   EDGEPOSE_DEVICE_ID   device_id written into device.toml (default: the host name)
#   EDGEPOSE_PIP_INDEX_URL  only when the site asks for it: a package index for what the bundle lacks
#                        (wheels/ missing) or, without a bundled wheel, for EDGEPOSE_PIP_SPEC itself
#   EDGEPOSE_PIP_SPEC    what pip installs from that index when there is no wheel in dist/ (no default:
#                        edgepose is not on PyPI, so nothing installs "edgepose" by name from a public index)
# For tests and image builds:
#   EDGEPOSE_ROOT=/mnt/root  act on a mounted image / temp dir instead of /
#   EDGEPOSE_DRY_RUN=1       print apt/pip/useradd/systemctl commands instead of running them
#   EDGEPOSE_PYTHON          interpreter with edgepose for detection/validation (default: the new venv's)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONF_SRC="${EDGEPOSE_CONFIG_DIR:-$(dirname "$HERE")}"   # the copied firmware_configs/ folder
if [ -f "$CONF_SRC/install.env" ]; then
    # shellcheck disable=SC1091
    . "$CONF_SRC/install.env"
fi

ROOT="${EDGEPOSE_ROOT:-}"
DRY_RUN="${EDGEPOSE_DRY_RUN:-0}"
VENV=/opt/edgepose/venv
ETC=/etc/edgepose
STATE=/var/lib/edgepose
MARKER="$STATE/.provisioned"
UNIT=/etc/systemd/system/edgepose.service
PY="${EDGEPOSE_PYTHON:-$ROOT$VENV/bin/python}"
DT_MODEL="${EDGEPOSE_DT_MODEL:-/proc/device-tree/model}"

log() { echo "edgepose-firstboot: $*" >&2; }
die() { log "error: $*"; exit 1; }
# System-changing commands go through run, so a dry run shows exactly what would happen.
run() {
    if [ "$DRY_RUN" = 1 ]; then
        echo "+ $*"
    else
        "$@"
    fi
}

[ -f "$CONF_SRC/device.toml" ] || die "no device.toml in $CONF_SRC (copy firmware_configs/ to the boot partition as edgepose/)."
[ -d "$CONF_SRC/boards" ] || die "no boards/ folder in $CONF_SRC."
# Which bundle this is: a card flashed again (a new config or version) provisions again, keeping
# the device's state (/var/lib/edgepose: event outbox) and a device.toml edited on the device.
bundle_id="none"
if [ -f "$CONF_SRC/MANIFEST.sha256" ]; then
    bundle_id="$(sha256sum < "$CONF_SRC/MANIFEST.sha256" | cut -c1-16)"
fi
reprovision=0
installed_conf=""
if [ -e "$ROOT$MARKER" ]; then
    previous_bundle="$(sed -n 's/^bundle //p' "$ROOT$MARKER")"
    installed_conf="$(sed -n 's/^device.toml //p' "$ROOT$MARKER")"
    if [ "$previous_bundle" = "$bundle_id" ]; then
        log "already provisioned with this bundle ($MARKER); nothing to do."
        exit 0
    fi
    reprovision=1
    log "a new bundle ($bundle_id; the device has ${previous_bundle:-an older one}): provisioning again, keeping $STATE"
fi
if [ "$DRY_RUN" != 1 ] && [ -z "$ROOT" ] && [ "$(id -u)" != 0 ]; then
    die "run as root (sudo $0)."
fi

is_pi=0
if tr -d '\0' < "$DT_MODEL" 2>/dev/null | grep -q "Raspberry Pi"; then
    is_pi=1
fi

# 0. bundle integrity ---------------------------------------------------------------------
if [ -f "$CONF_SRC/MANIFEST.sha256" ]; then
    (cd "$CONF_SRC" && sha256sum --quiet --strict -c MANIFEST.sha256 >&2) \
        || die "files in $CONF_SRC do not match MANIFEST.sha256 (card corrupt or edited); flash it again with edgepose flash."
    log "bundle verified: $(wc -l < "$CONF_SRC/MANIFEST.sha256") files match MANIFEST.sha256"
fi

# 1. packages: only those the image lacks (a stock image with them all needs no network) ---------
if [ -f "$CONF_SRC/apt-packages.txt" ]; then
    mapfile -t wanted < <(grep -v '^[[:space:]]*\(#\|$\)' "$CONF_SRC/apt-packages.txt")
else
    wanted=(python3-venv python3-pip)
    if [ "$is_pi" = 1 ]; then
        wanted+=(python3-picamera2)
    fi
fi
dpkg_db="$ROOT/var/lib/dpkg"
installed() {
    [ -d "$dpkg_db" ] && dpkg-query --admindir="$dpkg_db" -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"
}
pkgs=()
for p in "${wanted[@]}"; do
    # The Edge TPU runtime comes from Coral's repository, added in step 4.
    if [ "$p" != libedgetpu1-std ] && ! installed "$p"; then
        pkgs+=("$p")
    fi
done
if [ ${#pkgs[@]} -gt 0 ]; then
    log "installing ${pkgs[*]}"
    run apt-get update
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}"
else
    log "apt packages already installed: ${wanted[*]}"
fi

# 2. user ---------------------------------------------------------------------------
if [ "$DRY_RUN" = 1 ] || ! id edgepose >/dev/null 2>&1; then
    run useradd --system --user-group --home-dir "$STATE" --no-create-home --shell /usr/sbin/nologin edgepose
fi

# 3. venv + edgepose ------------------------------------------------------------------
run python3 -m venv --system-site-packages "$ROOT$VENV"
pip_args=(--no-cache-dir)
if [ -n "${EDGEPOSE_PIP_INDEX_URL:-}" ]; then
    pip_args+=(--index-url "$EDGEPOSE_PIP_INDEX_URL")
fi
# Keep apt's numpy: picamera2's compiled helpers (simplejpeg, ...) are built against it and
# break when pip pulls another major version into the venv.
sys_numpy="$(python3 -c 'import numpy; print(numpy.__version__)' 2>/dev/null || true)"
if [ -n "$sys_numpy" ] && [ "$is_pi" = 1 ]; then
    mkdir -p "$ROOT/opt/edgepose"
    echo "numpy==$sys_numpy" > "$ROOT/opt/edgepose/constraints.txt"
    pip_args+=(--constraint /opt/edgepose/constraints.txt)
fi
# The bundled wheel is the default; an index is used only when the site names one.
wheel="$(ls "$CONF_SRC"/dist/edgepose-*.whl 2>/dev/null | sort | tail -n 1 || true)"
if [ -n "$wheel" ] && [ -d "$CONF_SRC/wheels" ] && [ -z "${EDGEPOSE_PIP_INDEX_URL:-}" ]; then
    pip_args+=(--no-index --find-links "$CONF_SRC/wheels")
    spec="$wheel"
elif [ -n "$wheel" ] && [ -n "${EDGEPOSE_PIP_INDEX_URL:-}" ]; then
    pip_args+=(--find-links "$CONF_SRC/wheels")
    spec="$wheel"
elif [ -n "${EDGEPOSE_PIP_INDEX_URL:-}" ] && [ -n "${EDGEPOSE_PIP_SPEC:-}" ]; then
    spec="$EDGEPOSE_PIP_SPEC"
else
    die "no edgepose wheel in $CONF_SRC/dist and no EDGEPOSE_PIP_INDEX_URL + EDGEPOSE_PIP_SPEC: put a bundle there with 'edgepose flash' (or 'edgepose bundle')."
fi
log "pip install $spec"
t_pip=$SECONDS
run "$ROOT$VENV/bin/pip" install "${pip_args[@]}" "$spec"
if [ "$reprovision" = 1 ] && [ "$spec" = "$wheel" ]; then
    # The same version number from a new build: pip would call it installed and keep the old files.
    run "$ROOT$VENV/bin/pip" install "${pip_args[@]}" --no-deps --force-reinstall "$spec"
fi
log "installed in $((SECONDS - t_pip)) s"

# 4. config -------------------------------------------------------------------------
board="${EDGEPOSE_BOARD:-}"
if [ -z "$board" ]; then
    board="$(EDGEPOSE_DT_MODEL="$DT_MODEL" "$PY" -m edgepose.profiles detect)" || die "board detection failed; set EDGEPOSE_BOARD in install.env."
fi
[ -f "$CONF_SRC/boards/$board.toml" ] || die "no board profile '$board' in $CONF_SRC/boards."
log "board profile: $board"

install -d -m 0755 "$ROOT$ETC" "$ROOT$ETC/boards" "$ROOT/etc/systemd/system" "$ROOT$STATE"
install -m 0644 "$CONF_SRC"/boards/*.toml "$ROOT$ETC/boards/"
install -m 0644 "$CONF_SRC/boards/$board.toml" "$ROOT$ETC/board.toml"
# The bundle's device.toml with this device's id, as it would be installed.
device_id="${EDGEPOSE_DEVICE_ID:-$(hostname)}"
device_id="$(printf '%s' "$device_id" | tr -c 'A-Za-z0-9_.-' '-')"
new_conf="$(mktemp)"
sed "s/^device_id = .*/device_id = \"$device_id\"/" "$CONF_SRC/device.toml" > "$new_conf"
if [ ! -e "$ROOT$ETC/device.toml" ]; then
    install -m 0640 "$new_conf" "$ROOT$ETC/device.toml"
elif [ -n "$installed_conf" ] && [ "$(sha256sum < "$ROOT$ETC/device.toml" | cut -c1-64)" = "$installed_conf" ]; then
    # Unchanged since the last provisioning: the card's new config replaces it.
    install -m 0640 "$new_conf" "$ROOT$ETC/device.toml"
    log "replaced $ETC/device.toml with the card's"
elif cmp -s "$new_conf" "$ROOT$ETC/device.toml"; then
    :
else
    # Edited on the device: keep it (as dpkg keeps a changed conffile), the card's goes beside it.
    install -m 0640 "$new_conf" "$ROOT$ETC/device.toml.new"
    log "keeping $ETC/device.toml (changed on the device); the card's config is $ETC/device.toml.new"
fi
rm -f "$new_conf"
conf_sha="$(sha256sum < "$ROOT$ETC/device.toml" | cut -c1-64)"
if [ -d "$CONF_SRC/models" ]; then
    # Where the service's registry cache is (EDGEPOSE_CACHE_DIR of the unit): sha256-checked on use.
    install -d -m 0755 "$ROOT/var/cache/edgepose"
    cp -r "$CONF_SRC/models" "$ROOT/var/cache/edgepose/"
    run chown -R edgepose:edgepose "$ROOT/var/cache/edgepose"
fi
if [ ! -e "$ROOT$ETC/edgepose.env" ]; then
    # Secrets (EDGEPOSE_MQTT_PASSWORD=...) go here, not into device.toml.
    install -m 0640 /dev/null "$ROOT$ETC/edgepose.env"
fi
# `edgepose flash --secrets`: the card's values replace same-named lines, then leave the boot partition
# (readable by every local user there).
SECRETS="$(dirname "$CONF_SRC")/edgepose-secrets.env"
if [ -f "$SECRETS" ]; then
    merged="$(mktemp)"
    awk -F= 'NR == FNR { card[$1] = 1; next } !($1 in card)' "$SECRETS" "$ROOT$ETC/edgepose.env" > "$merged"
    cat "$SECRETS" >> "$merged"
    install -m 0640 "$merged" "$ROOT$ETC/edgepose.env"
    rm -f "$merged" "$SECRETS"
    log "installed $(grep -c = "$ROOT$ETC/edgepose.env") secret(s) into $ETC/edgepose.env"
fi
run chown -R root:edgepose "$ROOT$ETC"

if grep -q '^edgetpu *= *"on"' "$ROOT$ETC/board.toml"; then
    # Coral's apt repository for the Edge TPU runtime (https://coral.ai/docs/accelerator/get-started/).
    log "adding Coral's apt repository and libedgetpu1-std"
    install -d -m 0755 "$ROOT/etc/apt/sources.list.d"
    echo "deb [signed-by=/usr/share/keyrings/coral-edgetpu.gpg] https://packages.cloud.google.com/apt coral-edgetpu-stable main" \
        > "$ROOT/etc/apt/sources.list.d/coral-edgetpu.list"
    run sh -c "curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | gpg --dearmor -o /usr/share/keyrings/coral-edgetpu.gpg"
    run apt-get update
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y libedgetpu1-std
fi

# Compile the multi-pose decoder (numba) into the service's cache now, as its user: on a
# slow board the first compile takes minutes; the service would compile at its start (asking systemd for more time).
run install -d -m 0750 "$ROOT/var/cache/edgepose/numba"
run chown -R edgepose:edgepose "$ROOT/var/cache/edgepose"
log "compiling the numba code into /var/cache/edgepose/numba (minutes on a slow board, once)"
t_jit=$SECONDS
if ! run runuser -u edgepose -- env NUMBA_CACHE_DIR=/var/cache/edgepose/numba EDGEPOSE_CACHE_DIR=/var/cache/edgepose "$PY" -m edgepose compile; then
    log "warning: compiling failed; the service compiles on its first start or uses the numpy decoder."
fi
log "compiled in $((SECONDS - t_jit)) s"

# 5. validate, install the unit, start ---------------------------------------------------
"$PY" -m edgepose.profiles merged "$ROOT$ETC/device.toml" > /dev/null \
    || die "the config in $ETC does not validate (see above); fix it and run this script again."
install -m 0644 "$CONF_SRC/systemd/edgepose.service" "$ROOT$UNIT"
run systemctl daemon-reload
run systemctl enable edgepose.service
# restart, not start: after a re-flash the service may already run the old install.
run systemctl restart edgepose.service

# 6. done ---------------------------------------------------------------------------
printf '%s\nbundle %s\ndevice.toml %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$bundle_id" "$conf_sha" > "$ROOT$MARKER"
log "provisioned: board $board, config $ETC/device.toml, service edgepose.service enabled (bundle $bundle_id, ${SECONDS} s)."
