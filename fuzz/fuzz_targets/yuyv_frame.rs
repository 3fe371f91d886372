#![no_main]
//! `edge_reid::fuzzing::yuyv_frame`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_reid::fuzzing::yuyv_frame(data));
