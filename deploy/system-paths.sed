# The shipped config/feeds.toml keeps its data beside the checkout
# (../data); a system install keeps it in the service's state directory.
# Absolute paths, so the service and an admin's shell (which has no
# $STATE_DIRECTORY) open the same database. Used by deploy/install.sh and
# deploy/debian/build-deb.
s|^path = "../data/treatywatch.db"|path = "/var/lib/treatywatch/treatywatch.db"|
s|^folder = "../data/digests"|folder = "/var/lib/treatywatch/digests"|
