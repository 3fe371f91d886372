//! Raw V4L2 bindings of `<linux/videodev2.h>`, as crates.io's `v4l2-sys-mit` 0.3.0 generates them
//! with bindgen, but generated once per target by `regenerate.sh` and committed.

#![allow(non_upper_case_globals, non_camel_case_types, non_snake_case, dead_code)]
#![allow(clippy::all)]

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
include!("x86_64_linux.rs");

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
include!("aarch64_linux.rs");

#[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
compile_error!(
    "vendor/v4l2-sys-mit has V4L2 bindings for x86_64 and aarch64 Linux only: add this target's \
     with vendor/v4l2-sys-mit/regenerate.sh"
);
