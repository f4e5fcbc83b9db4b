# Multi-stage build: a static binary on a minimal, non-root image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/warren ./cmd/warren

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/warren /usr/local/bin/warren
WORKDIR /data
USER nonroot:nonroot
EXPOSE 8080
# warren refuses a non-loopback listen address until auth is configured, so
# run it with the host network (docker run --network host ...) and keep the
# default listen: 127.0.0.1:8080.
ENTRYPOINT ["/usr/local/bin/warren"]
CMD ["serve", "--config", "/etc/warren/warren.yaml"]
