# Multi-stage build of the one splitstream binary. The GraphiQL assets are
# committed and embedded, so no Node is needed here.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=docker
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/splitstream ./cmd/splitstream

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/splitstream /usr/local/bin/splitstream
# 8070 is the admin listener, on 127.0.0.1 unless SPLITSTREAM_ADMIN_ADDR says
# otherwise (docker-compose.yml sets 0.0.0.0:8070 to publish it).
EXPOSE 8000 8080 8090 8070
USER nonroot
ENTRYPOINT ["/usr/local/bin/splitstream"]
CMD ["all"]
