#![no_main]
//! `edge_reid::fuzzing::mat_file`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_reid::fuzzing::mat_file(data));
