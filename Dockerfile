# evently: one image for every service and every topology.
#   docker build -t evently .
#   docker run -p 8080:8080 -v evently-data:/data evently          # all in one, embedded SQLite
#   docker run evently serve --services booking                     # one service of a split deployment
# The binary is static apart from glibc (rustls, bundled SQLite, no OpenSSL), so the runtime stage is
# distroless with no shell; the health check is `evently health`.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# The cache mounts keep the registry and the build directory between builds (BuildKit).
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
COPY crates crates
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p evently --bin evently \
    && install -D -m 0755 target/release/evently /out/evently \
    && install -d -m 0750 /out/data

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/evently /usr/local/bin/evently
COPY --from=build --chown=65532:65532 /out/data /data
ENV EVENTLY_LISTEN=0.0.0.0:8080 \
    EVENTLY_DATA_DIR=/data \
    EVENTLY_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8080
USER 65532:65532
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/evently", "health"]
ENTRYPOINT ["/usr/local/bin/evently"]
CMD ["serve"]
