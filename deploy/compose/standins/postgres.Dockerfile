# Stand-in for postgres:16-bookworm: Debian's PostgreSQL and the official image's start-up behaviour.
FROM gitspaces-standin/debian:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends postgresql \
  && rm -rf /var/lib/apt/lists/* \
  && mkdir -p /var/lib/postgresql/data /docker-entrypoint-initdb.d /var/run/postgresql \
  && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
RUN ln -s /usr/lib/postgresql/*/bin /usr/lib/postgresql/bin
ENV PATH=/usr/lib/postgresql/bin:$PATH PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
LABEL org.gitspaces.standin="postgres:16-bookworm"
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
