# Build: docker build -f envoy/images/companion.Dockerfile -t ghcr.io/example/endpoint-picker-companion:0.1.0 .
# The repository's .dockerignore keeps node_modules, build and .git out of the context, so `COPY . .`
# cannot overwrite the node_modules that `npm ci` installed here.
FROM node:22 AS build
WORKDIR /src
COPY package.json package-lock.json ./
COPY patches ./patches
RUN npm ci --no-audit --no-fund
COPY . .
# make rebuilds node_modules when package.json looks newer than its stamp: it is not.
RUN touch node_modules/.package-lock.json && make build/companion.mjs

FROM gcr.io/distroless/nodejs22-debian12:nonroot
WORKDIR /app
COPY --from=build /src/build/companion.mjs /app/companion.mjs
USER 65532:65532
EXPOSE 9002
ENTRYPOINT ["/nodejs/bin/node", "/app/companion.mjs"]
