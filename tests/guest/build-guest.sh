#!/bin/bash
# Build the vmshift test guest: OUTDIR/vmlinuz and OUTDIR/initramfs.cpio.gz.
#
#   build-guest.sh OUTDIR WORKLOAD_BINARY
#
# The guest is the host's newest installed Debian kernel plus an initramfs
# holding a static busybox, the virtio modules needed for virtio-blk,
# tests/guest/init and the statically linked workload as /bin/vms-workload.
# No network and no distro image are needed, so every test machine can
# build it in a second from installed packages.
#
# Several test processes may run this at once for the same OUTDIR: the
# build is serialised with flock when available, always done in a private
# temporary directory inside OUTDIR and published with rename(2), so a
# reader never sees a half-written file.  If the outputs are already newer
# than every input the script does nothing.
#
# Environment (optional): VMS_GUEST_BUSYBOX overrides /bin/busybox.

set -euo pipefail

prog=build-guest.sh
# modinfo lives in /usr/sbin on Debian, which is not on a normal user's
# (or a test runner's) PATH.
PATH=$PATH:/usr/sbin:/sbin

die () {
  echo "$prog: error: $*" >&2
  exit 1
}

need_cmd () {
  # $1 command, $2 Debian package providing it
  command -v "$1" >/dev/null 2>&1 \
    || die "'$1' not found; install the Debian package '$2' (apt-get install $2)"
}

if [ "$#" -ne 2 ]; then
  echo "usage: $prog OUTDIR WORKLOAD_BINARY" >&2
  exit 2
fi

outdir=$1
workload=$2
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
init_script=$script_dir/init
self=$script_dir/$(basename "${BASH_SOURCE[0]}")
busybox=${VMS_GUEST_BUSYBOX:-/bin/busybox}

# Loaded by init in this order; anything the kernel has built in is
# skipped.  virtio_blk is the one the guest cannot do without.
modules=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev
         virtio_pci virtio_blk)
# What init needs, plus a few applets that make a debugging shell usable.
applets=(sh mkdir mount insmod cat sleep echo ls dmesg uname lsmod)

[ -f "$init_script" ] || die "guest init script not found at $init_script"
[ -f "$workload" ] || die "workload binary '$workload' not found (build it first)"
[ -x "$workload" ] || die "workload binary '$workload' is not executable"

need_cmd cpio cpio
need_cmd gzip gzip
need_cmd modinfo kmod

[ -e "$busybox" ] \
  || die "$busybox not found; install the Debian package 'busybox-static'"
# The initramfs has no libc, so a dynamically linked busybox (Debian's
# 'busybox' package) would fail to start with a bare "not found".
if LC_ALL=C ldd "$busybox" >/dev/null 2>&1; then
  die "$busybox is dynamically linked; install the Debian package 'busybox-static' (it replaces 'busybox')"
fi

# Newest installed kernel by version order, not by mtime: package
# installs do not set meaningful mtimes.
kernel=
for k in /boot/vmlinuz-*; do
  [ -e "$k" ] || continue
  if [ -z "$kernel" ] \
     || [ "$(printf '%s\n%s\n' "${kernel#/boot/vmlinuz-}" "${k#/boot/vmlinuz-}" \
             | sort -V | tail -n 1)" = "${k#/boot/vmlinuz-}" ]; then
    kernel=$k
  fi
done
[ -n "$kernel" ] \
  || die "no kernel in /boot/vmlinuz-*; install the Debian package 'linux-image-amd64'"
kver=${kernel#/boot/vmlinuz-}
[ -r "$kernel" ] \
  || die "cannot read $kernel (Debian installs it root-only: run as root)"
[ -d "/lib/modules/$kver" ] \
  || die "/lib/modules/$kver missing; reinstall the Debian package 'linux-image-$kver'"

mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
out_kernel=$outdir/vmlinuz
out_initrd=$outdir/initramfs.cpio.gz
out_kver=$outdir/guest-kver

up_to_date () {
  local input

  [ -f "$out_kernel" ] && [ -f "$out_initrd" ] && [ -f "$out_kver" ] \
    || return 1
  # A different kernel package may have older mtimes than our copy, so
  # the version is recorded explicitly rather than trusted to -nt.
  [ "$(cat "$out_kver")" = "$kver" ] || return 1
  for input in "$init_script" "$workload" "$busybox" "$kernel" "$self"; do
    [ "$out_kernel" -nt "$input" ] && [ "$out_initrd" -nt "$input" ] \
      || return 1
  done
  return 0
}

up_to_date && exit 0

# Serialise concurrent builders so only one does the work; the others
# wake up to find the result up to date.  Without flock the mktemp/rename
# scheme below is still safe, only some work is duplicated.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$outdir/.build-guest.lock"
  flock 9
  up_to_date && exit 0
fi

tmp=$(mktemp -d "$outdir/.build-guest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
mkdir -p "$root/bin" "$root/sbin" "$root/dev" "$root/proc" "$root/sys" \
         "$root/lib/modules" "$root/tmp"

for m in "${modules[@]}"; do
  if ! path=$(modinfo -k "$kver" -n "$m" 2>/dev/null); then
    # Split into optional helpers of virtio_pci (absent on old kernels)
    # and the modules the disk cannot work without.
    case "$m" in
      virtio_pci_modern_dev|virtio_pci_legacy_dev) continue ;;
    esac
    die "kernel module '$m' not found for $kver; reinstall the Debian package 'linux-image-$kver' (and 'kmod')"
  fi
  case "$path" in
    "(builtin)"|"") continue ;;
    *.ko) cp "$path" "$root/lib/modules/$m.ko" ;;
    *.ko.xz)
      if command -v xz >/dev/null 2>&1; then
        xz -dc "$path" >"$root/lib/modules/$m.ko"
      else
        "$busybox" xz -dc "$path" >"$root/lib/modules/$m.ko"
      fi
      ;;
    *.ko.zst)
      need_cmd zstd zstd
      zstd -q -dc "$path" >"$root/lib/modules/$m.ko"
      ;;
    *.ko.gz) gzip -dc "$path" >"$root/lib/modules/$m.ko" ;;
    *) die "unsupported module file '$path' for '$m'" ;;
  esac
done

# init loads a fixed list with plain insmod (no depmod in the guest);
# catch a kernel whose virtio modules grew a new dependency here, where
# the message is readable, rather than as a missing /dev/vda in a log.
for ko in "$root"/lib/modules/*.ko; do
  deps=$(modinfo -F depends "$ko" 2>/dev/null || true)
  IFS=, read -r -a deplist <<<"$deps"
  for d in "${deplist[@]}"; do
    [ -n "$d" ] || continue
    [ -f "$root/lib/modules/$d.ko" ] && continue
    [ "$(modinfo -k "$kver" -n "$d" 2>/dev/null || true)" = "(builtin)" ] \
      && continue
    die "module $(basename "$ko" .ko) needs '$d', which tests/guest/init does not load"
  done
done

cp "$busybox" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
for a in "${applets[@]}"; do
  ln -s busybox "$root/bin/$a"
done
cp "$init_script" "$root/init"
chmod 0755 "$root/init"
cp "$workload" "$root/bin/vms-workload"
chmod 0755 "$root/bin/vms-workload"

# The kernel opens /dev/console on the initramfs before starting init;
# without the node init would start with no stdio.  init re-opens it from
# devtmpfs anyway, so this is best effort (mknod may be refused in a
# container).
mknod -m 0600 "$root/dev/console" c 5 1 2>/dev/null || true

# Sorted names and root ownership: the archive depends only on content.
(cd "$root" && find . -mindepth 1 -print0 | LC_ALL=C sort -z \
   | cpio --null --create --format=newc --owner=0:0 --quiet) \
  | gzip -9 -n >"$tmp/initramfs.cpio.gz"
cp "$kernel" "$tmp/vmlinuz"
chmod 0644 "$tmp/vmlinuz" "$tmp/initramfs.cpio.gz"
printf '%s\n' "$kver" >"$tmp/guest-kver"

# Each rename is atomic; the version stamp goes last so an interrupted
# publish is seen as out of date and redone.
rm -f "$out_kver"
mv -f "$tmp/initramfs.cpio.gz" "$out_initrd"
mv -f "$tmp/vmlinuz" "$out_kernel"
mv -f "$tmp/guest-kver" "$out_kver"

echo "$prog: built guest for kernel $kver in $outdir"
