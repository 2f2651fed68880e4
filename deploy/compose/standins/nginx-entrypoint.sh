#!/bin/sh
# Debian's nginx (1.22) predates the upstream `resolve` parameter (nginx 1.27.3): run a copy of the configuration
# without it (and without the shared zone it needs). Everything else is the configuration as mounted.
set -eu
sed -e 's/ resolve / /' -e '/^\s*zone /d' /etc/nginx/nginx.conf >/tmp/nginx.conf
exec "$@" -c /tmp/nginx.conf -e /dev/stderr
