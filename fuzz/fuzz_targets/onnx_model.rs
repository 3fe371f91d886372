#![no_main]
//! `edge_reid::fuzzing::onnx_model`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_reid::fuzzing::onnx_model(data));
