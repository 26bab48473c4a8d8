# Build a static podlife binary and ship it on distroless, non-root.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o /podlife ./cmd/podlife

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /podlife /podlife
USER 65532:65532
ENTRYPOINT ["/podlife"]
CMD ["agent"]
