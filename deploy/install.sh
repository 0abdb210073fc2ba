#!/bin/sh
# Installs treatywatch as a systemd service (Debian, Ubuntu or any systemd
# distribution). Run as root from the source folder after
# `cargo build --release --locked`.
#
#   sudo deploy/install.sh            # install, enable and start
#   DESTDIR=/tmp/stage deploy/install.sh   # stage the files only (no systemctl)
#
# Your edits are kept: an existing /etc/treatywatch/feeds.toml is never
# touched, and a data file you changed is left in place with the new one
# beside it as <name>.new.
set -eu

dest="${DESTDIR:-}"
etc="$dest/etc/treatywatch"
bin="$dest/usr/local/bin"
unit_dir="$dest/etc/systemd/system"

# CI stages a debug build through TREATYWATCH_BIN; you want the release one.
built="${TREATYWATCH_BIN:-target/release/treatywatch}"
[ -x "$built" ] || { echo "build first: cargo build --release --locked" >&2; exit 1; }

install -d -m 0755 "$bin" "$etc" "$unit_dir"
install -m 0755 "$built" "$bin/treatywatch"

for f in config/*.toml; do
    name=$(basename "$f")
    [ "$name" = feeds.toml ] && continue
    if [ -f "$etc/$name" ] && ! cmp -s "$f" "$etc/$name"; then
        install -m 0644 "$f" "$etc/$name.new"
        echo "kept your $etc/$name; the new version is $etc/$name.new"
    else
        install -m 0644 "$f" "$etc/$name"
    fi
done

# The shipped feeds.toml keeps its data beside the checkout; a service keeps
# it in its StateDirectory.
if [ ! -f "$etc/feeds.toml" ]; then
    sed -e 's|^path = "../data/treatywatch.db"|path = "/var/lib/treatywatch/treatywatch.db"|' \
        -e 's|^folder = "../data/digests"|folder = "/var/lib/treatywatch/digests"|' \
        config/feeds.toml > "$etc/feeds.toml"
    chmod 0644 "$etc/feeds.toml"
fi
# LoadCredential= needs the file to exist; leave it empty until SMTP is used.
[ -f "$etc/smtp-password" ] || install -m 0600 /dev/null "$etc/smtp-password"

install -m 0644 deploy/treatywatch.service "$unit_dir/treatywatch.service"

"$bin/treatywatch" --config "$etc/feeds.toml" check

if [ -z "$dest" ]; then
    systemctl daemon-reload
    systemctl enable --now treatywatch.service
    systemctl --no-pager status treatywatch.service || true
fi
