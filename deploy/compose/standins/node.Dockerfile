# Stand-in for node:22-bookworm-slim: the host's Node.js files (nodejs.tar) on a Debian bookworm root.
FROM gitspaces-standin/debian:bookworm
COPY nodejs.tar /tmp/nodejs.tar
# The certificate authorities the host adds to the system's (a TLS-inspecting egress proxy, where there is one), so
# that npm inside the build reaches the registry as npm on the host does. The real image needs none.
COPY extra-ca.crt /usr/local/share/ca-certificates/standin-host-extra.crt
ENV NODE_EXTRA_CA_CERTS=/usr/local/share/ca-certificates/standin-host-extra.crt
RUN tar -C / -xf /tmp/nodejs.tar && rm /tmp/nodejs.tar \
  && groupadd -g 1000 node && useradd -u 1000 -g node -m -s /bin/bash node
# node-gyp builds native modules against these headers instead of downloading them.
ENV npm_config_nodedir=/usr
LABEL org.gitspaces.standin="node:22-bookworm-slim"
CMD ["node"]
