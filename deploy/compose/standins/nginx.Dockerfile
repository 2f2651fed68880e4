# Stand-in for nginx:1.28-alpine: Debian's nginx, started as the official image starts it (nginx -g 'daemon off;').
FROM gitspaces-standin/debian:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends nginx-light wget \
  && rm -rf /var/lib/apt/lists/* \
  && ln -sf /dev/stderr /var/log/nginx/error.log && ln -sf /dev/stdout /var/log/nginx/access.log \
  && (getent passwd 101 || useradd -u 101 -r -s /usr/sbin/nologin nginx-standin)
COPY nginx-entrypoint.sh /docker-entrypoint.sh
LABEL org.gitspaces.standin="nginx:1.28-alpine"
ENTRYPOINT ["/docker-entrypoint.sh"]
CMD ["nginx", "-g", "daemon off;"]
