# syntax=docker/dockerfile:1
# Multi-stage build of the herald binary. The runtime image is small, runs as a non-root user,
# and carries the default channel templates (channels/) and configs (config/).

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits don't rebuild them.
COPY Cargo.toml Cargo.lock build.rs ./
# The idle daemon's hot functions, placed together by the linker (build.rs).
COPY build ./build
RUN mkdir src && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
 && cargo build --release --locked --bin herald || true
COPY src ./src
COPY channels ./channels
# Cargo.toml names the benchmarks' example targets.
COPY bench ./bench
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin herald

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin herald \
 && mkdir -p /app/data && chown herald:herald /app/data
WORKDIR /app
COPY --from=build /src/target/release/herald /usr/local/bin/herald
COPY channels ./channels
COPY config ./config
USER 10001:10001
ENV HERALD_CONFIG=/app/config/herald.toml
# Two glibc allocator arenas instead of one per thread (up to 16 here): the idle daemon keeps
# ~1.5 MB less resident (bench/daemon).
ENV MALLOC_ARENA_MAX=2
EXPOSE 8025
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8025/healthz || exit 1
ENTRYPOINT ["herald"]
CMD ["daemon"]
