# Build: docker build -f envoy/images/companion.Dockerfile -t ghcr.io/example/endpoint-picker-companion:0.1.0 .
FROM node:20 AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN make build/companion.mjs

FROM gcr.io/distroless/nodejs20-debian12:nonroot
WORKDIR /app
COPY --from=build /src/build/companion.mjs /app/companion.mjs
USER 65532:65532
EXPOSE 9002
ENTRYPOINT ["/nodejs/bin/node", "/app/companion.mjs"]
