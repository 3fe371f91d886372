#![no_main]
//! `edge_reid::fuzzing::cli_values`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_reid::fuzzing::cli_values(data));
