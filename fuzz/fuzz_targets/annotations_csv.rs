#![no_main]
//! `edge_reid::fuzzing::annotations_csv`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_reid::fuzzing::annotations_csv(data));
