# The herald binary, for compose.yaml (docker compose --profile herald …).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /herald ./cmd/herald

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /herald /herald
ENTRYPOINT ["/herald"]
