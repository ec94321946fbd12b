# The fleet's image: every `fleet` command, one process per container (docker-compose.yml runs the roles).
# Build: docker build -t natsfleet:local .    Run: docker run --rm natsfleet:local --help
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# the lock file holds every platform's optional msgpackr-extract build, so npm ci installs the one for this platform;
# scripts off: `prepare` would compile before the sources are here
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN npx tsc -p tsconfig.json && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# the shipped fleets, their knowledge and skills (docker-compose.yml mounts ./config over this), and the tool modules'
# sources that configs name by path
COPY --from=build /app/config ./config
COPY --from=build /app/examples ./examples
RUN mkdir -p /app/.fleet
ENTRYPOINT ["node", "/app/dist/cli/main.js"]
CMD ["--help"]
