#![no_main]
//! `edge_reid::fuzzing::tracker`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_reid::fuzzing::tracker(data));
