#!/usr/bin/env bash
# Regenerates the committed V4L2 bindings (src/x86_64_linux.rs, src/aarch64_linux.rs) from the
# Linux UAPI header <linux/videodev2.h>, with the bindgen version crates.io's v4l2-sys-mit 0.3.0
# builds them with. Needs Debian's libclang-dev, linux-libc-dev and, for aarch64, the cross headers
# (linux-libc-dev-arm64-cross, libc6-dev-arm64-cross); run it from anywhere.
set -euo pipefail
cd "$(dirname "$0")"
if ! bindgen --version 2>/dev/null | grep -q "^bindgen 0.65.1$"; then
    cargo install bindgen-cli --version 0.65.1 --locked
fi
bindgen wrapper.h -o src/x86_64_linux.rs -- --target=x86_64-linux-gnu
bindgen wrapper.h -o src/aarch64_linux.rs -- --target=aarch64-linux-gnu \
    -isystem /usr/aarch64-linux-gnu/include
echo "wrote src/x86_64_linux.rs and src/aarch64_linux.rs ($(bindgen --version))"
