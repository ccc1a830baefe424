# vigil as a sidecar image: a static-enough release binary on a slim base.
# Build: docker build -t vigil .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY agent agent
COPY models models
COPY tests tests
COPY benches benches
RUN cargo build --release --locked --bin vigil

FROM debian:bookworm-slim
COPY --from=build /src/target/release/vigil /usr/local/bin/vigil
EXPOSE 9797
# ECS container health checks are exec only: `vigil probe` needs no curl in the image.
HEALTHCHECK --interval=10s --timeout=3s CMD ["/usr/local/bin/vigil", "probe"]
ENTRYPOINT ["/usr/local/bin/vigil"]
