#![no_main]
//! `edge_reid::fuzzing::gallery_file`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_reid::fuzzing::gallery_file(data));
