# vigil as a sidecar image: one fully static binary in an empty image, run as nobody.
# Build: docker build -t vigil .   (amd64 and arm64: docker buildx build --platform linux/amd64,linux/arm64)
# The build command is the one CI checks with .ci/static-check.sh (static, serves from an empty root).
FROM rust:1-bookworm AS build
ARG TARGETARCH
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY agent agent
COPY models models
COPY tests tests
COPY benches benches
# glibc linked in statically (crt-static): no interpreter and no shared library, so the binary
# runs in `scratch`. --target keeps the flag off build scripts and proc macros. The result is a
# static-pie: its dynamic section names nothing and holds only relative relocations, which the
# binary applies to itself where the kernel placed it (address randomisation kept; a
# non-relocatable build would drop it for nothing).
RUN case "${TARGETARCH:-amd64}" in \
      amd64) target=x86_64-unknown-linux-gnu ;; \
      arm64) target=aarch64-unknown-linux-gnu ;; \
      *) echo "unsupported architecture ${TARGETARCH}" >&2; exit 1 ;; \
    esac \
 && RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --target "$target" --bin vigil \
 && cp "target/$target/release/vigil" /vigil

FROM scratch
COPY --from=build /vigil /vigil
USER 65534:65534
EXPOSE 9797
# ECS container health checks are exec only: `vigil probe` needs no curl (and there is no shell).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s CMD ["/vigil", "probe"]
ENTRYPOINT ["/vigil"]
