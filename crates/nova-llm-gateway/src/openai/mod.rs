//! OpenAI's wire shape, server side: request bodies read into core requests, replies,
//! stream chunks and errors written as the official SDKs expect them.

pub(crate) mod error;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod stream;
