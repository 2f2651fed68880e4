# One image for every Gitspaces part; docker-compose.yml picks the part with the command.
FROM node:20-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends git python3 make g++ ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
ENV GITSPACES_DATA_DIR=/data
VOLUME ["/data"]
CMD ["npm", "run", "api"]
