# Stand-in for temporalio/ui: ui-server built from its Go module with its own docker.yaml (configured from the
# environment, as in the real image); it serves the UI's API and /healthz but no web pages (those are built by npm).
FROM gitspaces-standin/debian:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends wget \
  && rm -rf /var/lib/apt/lists/* && groupadd -g 5000 temporal && useradd -u 5000 -g temporal -m temporal
WORKDIR /home/ui-server
COPY ui-server ./ui-server
COPY docker.yaml ./config/docker.yaml
USER temporal
EXPOSE 8080
LABEL org.gitspaces.standin="temporalio/ui"
CMD ["./ui-server", "--env", "docker", "start"]
