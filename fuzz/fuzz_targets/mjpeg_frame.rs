#![no_main]
//! `edge_reid::fuzzing::mjpeg_frame`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_reid::fuzzing::mjpeg_frame(data));
