#![no_main]
//! `edge_reid::fuzzing::yolo_output`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_reid::fuzzing::yolo_output(data));
