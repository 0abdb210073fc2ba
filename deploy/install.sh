#!/bin/sh
# Installs treatywatch as a systemd service on a systemd distribution that
# cannot take the Debian package (on Debian and Ubuntu, `apt install
# ./treatywatch_*.deb` instead: see README.md). Run as root from the source
# folder after `cargo build --release --locked`.
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

install -d -m 0755 "$etc/membership"
for f in config/*.toml config/membership/*.toml; do
    name=${f#config/}
    [ "$name" = feeds.toml ] && continue
    if [ -f "$etc/$name" ] && ! cmp -s "$f" "$etc/$name"; then
        install -m 0644 "$f" "$etc/$name.new"
        echo "kept your $etc/$name; the new version is $etc/$name.new"
    else
        install -m 0644 "$f" "$etc/$name"
    fi
done

# The shipped feeds.toml keeps its data beside the checkout; a service keeps
# it in its StateDirectory (absolute paths: see the sed file).
if [ ! -f "$etc/feeds.toml" ]; then
    sed -f deploy/system-paths.sed config/feeds.toml > "$etc/feeds.toml"
    chmod 0644 "$etc/feeds.toml"
fi

# The unit runs as this system user (a real one, not DynamicUser, so an
# admin can `sudo -u treatywatch treatywatch status`).
if [ -z "$dest" ] && ! getent passwd treatywatch >/dev/null; then
    useradd --system --user-group --home-dir /var/lib/treatywatch --no-create-home \
        --shell /usr/sbin/nologin treatywatch
fi
# LoadCredential= needs the file to exist; leave it empty until SMTP is
# used. An older install's smtp-password becomes it.
if [ ! -f "$etc/smtp" ]; then
    if [ -f "$etc/smtp-password" ]; then
        mv "$etc/smtp-password" "$etc/smtp"
    else
        install -m 0640 /dev/null "$etc/smtp"
    fi
    [ -n "$dest" ] || chgrp treatywatch "$etc/smtp"
fi

# The unit names /usr/bin (the package's path); this install uses /usr/local.
sed 's|/usr/bin/treatywatch|/usr/local/bin/treatywatch|g' deploy/treatywatch.service \
    > "$unit_dir/treatywatch.service"
chmod 0644 "$unit_dir/treatywatch.service"

"$bin/treatywatch" --config "$etc/feeds.toml" check

if [ -z "$dest" ]; then
    systemctl daemon-reload
    systemctl enable treatywatch.service
    # restart, not start: after an upgrade the old binary must not keep running.
    systemctl restart treatywatch.service
    systemctl --no-pager status treatywatch.service || true
fi
