#!/usr/bin/env bash
# Make this machine able to build and run the bento's container image without Docker or a registry:
# podman (runc, host network) plus a local python:3.11-slim stand-in made with debootstrap.
# Idempotent; run as root. Recipe and the reasons for each setting: ../shared/notes/containers.md.
set -euo pipefail

BASE_IMAGE=docker.io/library/python:3.11-slim
SUITE=bookworm  # bookworm's python3 is 3.11, the bento's Python

if [ "$(id -u)" -ne 0 ]; then
    echo "container-base.sh: run as root (it installs packages and configures podman)" >&2
    exit 2
fi

# 1. podman and friends
need=()
for cmd in podman runc conmon slirp4netns fuse-overlayfs newuidmap catatonit debootstrap; do
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/libexec/podman/$cmd" ] || need+=("$cmd")
done
if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends podman runc conmon containernetworking-plugins slirp4netns \
        fuse-overlayfs uidmap catatonit debootstrap
fi

# 2. podman settings this sandbox needs: runc (crun refuses hybrid cgroups), cgroupfs, rlimits it may set
mkdir -p /etc/containers
cat >/etc/containers/containers.conf <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "host"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF

# 3. the base image, made locally (no registry is reachable)
if podman image exists "$BASE_IMAGE"; then
    echo "container-base.sh: $BASE_IMAGE already present"
    exit 0
fi
mirror=$(awk '/^(URIs:|deb )/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\/.*\/debian\/?$/) print $i }' \
    $(ls /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null) | head -n1)
if [ -z "$mirror" ]; then
    echo "container-base.sh: no Debian mirror found in /etc/apt/sources.list*" >&2
    exit 1
fi
work=$(mktemp -d /var/tmp/eeg2arm-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates \
    "$SUITE" "$rootfs" "$mirror"
# HTTPS from here goes through a proxy whose CA only this machine knows: trust it inside the image too
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
fi
chroot "$rootfs" update-ca-certificates
rm -f "$rootfs"/usr/lib/python3.*/EXTERNALLY-MANAGED
security=${mirror%/debian*}/debian-security
cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror $SUITE main
deb $mirror $SUITE-updates main
deb $security $SUITE-security main
EOF
tar -C "$rootfs" -cf "$work/rootfs.tar" .
podman import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV UV_NATIVE_TLS=1' \
    --change 'CMD ["python3"]' \
    "$work/rootfs.tar" "$BASE_IMAGE"
echo "container-base.sh: made $BASE_IMAGE from Debian $SUITE ($mirror)"
