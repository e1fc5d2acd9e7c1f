//! The driver's tests: exact requests on a loopback wiremock server, parsing, streams over
//! real HTTP, the error table, configuration, and the shared conformance kit with a double
//! of the Gemini API.

mod config;
mod conformance;
mod errors;
mod parsing;
mod requests;
mod streaming;
mod support;
