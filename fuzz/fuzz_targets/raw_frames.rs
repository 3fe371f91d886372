#![no_main]
//! `edge_reid::fuzzing::raw_frames`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_reid::fuzzing::raw_frames(data));
