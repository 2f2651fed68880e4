# Stand-in for temporalio/admin-tools: temporal-sql-tool and the schema of the same server release, the Temporal CLI.
FROM gitspaces-standin/debian:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends netcat-openbsd \
  && rm -rf /var/lib/apt/lists/* && groupadd -g 1000 temporal && useradd -u 1000 -g temporal -m temporal
COPY temporal temporal-sql-tool /usr/local/bin/
COPY schema /etc/temporal/schema
USER temporal
LABEL org.gitspaces.standin="temporalio/admin-tools"
CMD ["sh", "-c", "trap exit INT HUP TERM; sleep infinity"]
