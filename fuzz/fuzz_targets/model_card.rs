#![no_main]
//! `edge_reid::fuzzing::model_card`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_reid::fuzzing::model_card(data));
