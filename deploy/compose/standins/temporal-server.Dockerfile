# Stand-in for temporalio/server: temporal-server built from the Go module, started as Temporal's image starts it.
FROM gitspaces-standin/debian:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends netcat-openbsd \
  && rm -rf /var/lib/apt/lists/* && groupadd -g 1000 temporal && useradd -u 1000 -g temporal -m temporal
COPY temporal-server /usr/local/bin/temporal-server
COPY temporal-entrypoint.sh /etc/temporal/entrypoint.sh
WORKDIR /etc/temporal
USER temporal
LABEL org.gitspaces.standin="temporalio/server"
CMD ["/etc/temporal/entrypoint.sh"]
