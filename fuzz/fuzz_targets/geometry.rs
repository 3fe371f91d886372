#![no_main]
//! `edge_reid::fuzzing::geometry`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_reid::fuzzing::geometry(data));
