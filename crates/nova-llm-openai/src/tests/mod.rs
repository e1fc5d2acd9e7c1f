//! The driver's tests: requests asserted byte for byte on a loopback wiremock server,
//! parsing, streaming over real HTTP (including a raw socket server for cut and stalled
//! streams), the error table, secrets, configuration, and an opt-in live test.

mod config;
mod conformance;
mod errors;
mod live;
mod parsing;
mod requests;
mod sse_tolerance;
mod streaming;
mod support;
