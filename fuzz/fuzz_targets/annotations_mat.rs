#![no_main]
//! `edge_reid::fuzzing::annotations_mat`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_reid::fuzzing::annotations_mat(data));
