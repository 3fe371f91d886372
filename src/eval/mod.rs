//! Evaluation shared by `edge-reid eval` and `edge-reid-train eval`: the ranking and attribute
//! metrics ([`metrics`]), the open-set rates and the unknown-distance calibration ([`open_set`]),
//! a model scored on a Market-1501 layout folder ([`market`]), and the tables printed
//! ([`report`]).

pub mod market;
pub mod metrics;
pub mod open_set;
pub mod report;
