//! Data the runtime shares with training but never runs on a camera: the Market-1501 layout and its
//! attribute annotations ([`market`]) and the synthetic renderer of Market-style people
//! ([`synth`], which also draws the synthetic camera's frames).

pub mod market;
pub mod synth;
