//! Anthropic's Messages API, server side: `/v1/messages` bodies read into core requests,
//! messages, named stream events and errors written as the Anthropic SDKs expect them.

pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod stream;
