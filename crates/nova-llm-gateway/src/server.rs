//! The HTTP side: routes, the request's body read with a size limit and a deadline, the
//! key checked, the call made through the route's provider, the answer in OpenAI's shape.

// A refused request's `Err` is the HTTP response itself, made once on a cold path.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use nova_llm_core::{ChatStream, ErrorKind, LlmError, StreamEvent};
use nova_llm_provider::CallOptions;
use tokio::time::Instant;

use crate::Gateway;
use crate::access::{KEY_TAG, Key, Refusal};
use crate::anthropic;
use crate::openai::error::{ErrorBody, describe};
use crate::openai::stream::{ChunkWriter, Shape};
use crate::openai::{request, response};
use crate::timed::measure;

/// The router of `gateway`.
pub(crate) fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/messages", post(messages))
        .route("/v1/models", get(models))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(gateway)
}

/// Which API a request came through, so its errors come back in that API's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    OpenAi,
    Anthropic,
}

/// A failed request: the status, the protocol's error body, `Retry-After` when known.
fn error_response(p: Protocol, err: &LlmError) -> Response {
    let (status, body) = match p {
        Protocol::OpenAi => (
            describe(err.kind()).0,
            response::to_vec(&ErrorBody::of(err)),
        ),
        Protocol::Anthropic => (
            anthropic::response::describe(err.kind()).0,
            response::to_vec(&anthropic::response::ErrorBody::of(err)),
        ),
    };
    let mut res = json(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body,
    );
    if let Some(wait) = err.retry_after() {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    res
}

/// A failure of the gateway's own with a given status and OpenAI type.
fn own_error(
    p: Protocol,
    status: StatusCode,
    kind: &'static str,
    code: Option<&str>,
    message: &str,
) -> Response {
    match p {
        Protocol::OpenAi => json(
            status,
            response::to_vec(&ErrorBody::new(message, kind, code)),
        ),
        Protocol::Anthropic => {
            let kind = match status.as_u16() {
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                _ => "invalid_request_error",
            };
            json(
                status,
                response::to_vec(&anthropic::response::ErrorBody::new(kind, message)),
            )
        }
    }
}

fn json(status: StatusCode, body: Vec<u8>) -> Response {
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The body, read whole within the size limit and the deadline.
async fn read_body(p: Protocol, gw: &Gateway, body: Body) -> Result<Bytes, Response> {
    let limit = gw.config.server.max_body_bytes;
    match tokio::time::timeout(
        gw.config.server.body_timeout(),
        axum::body::to_bytes(body, limit),
    )
    .await
    {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(own_error(
            p,
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            Some("request_too_large"),
            &format!("the request body is over the limit of {limit} bytes (or was cut)"),
        )),
        Err(_) => Err(own_error(
            p,
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            Some("request_timeout"),
            "the request body did not arrive in time",
        )),
    }
}

/// The caller's key, when keys are needed.
/// The key comes as `Authorization: Bearer KEY` (OpenAI's clients) or `x-api-key: KEY`
/// (Anthropic's).
fn authenticate(
    p: Protocol,
    gw: &Gateway,
    headers: &HeaderMap,
) -> Result<Option<Arc<Key>>, Response> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let auth = bearer.or_else(|| {
        headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(|k| format!("Bearer {k}"))
    });
    gw.keys.authenticate(auth.as_deref()).map_err(|r| {
        let message = match r {
            Refusal::Missing => "a gateway key is needed: Authorization: Bearer <key>",
            Refusal::Unknown => "the gateway key is not valid",
        };
        own_error(
            p,
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            Some("invalid_api_key"),
            message,
        )
    })
}

/// What every call endpoint does before the call: key, body, route, permission.
struct Admitted<'g> {
    route: &'g crate::routes::Route,
    options: CallOptions,
    key: Option<Arc<Key>>,
}

fn admit<'g>(
    p: Protocol,
    gw: &'g Gateway,
    key: Option<Arc<Key>>,
    model: &str,
) -> Result<Admitted<'g>, Response> {
    let Some(route) = gw.routes.get(model) else {
        return Err(own_error(
            p,
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("model_not_found"),
            &format!(
                "the model `{model}` does not exist on this gateway (GET /v1/models lists them)"
            ),
        ));
    };
    if let Some(k) = &key
        && !k.allows(model)
    {
        return Err(own_error(
            p,
            StatusCode::FORBIDDEN,
            "permission_error",
            Some("model_not_allowed"),
            &format!("the key `{}` may not use the model `{model}`", k.name),
        ));
    }
    let options = match &key {
        Some(k) => CallOptions::new().tag(KEY_TAG, k.name.clone()),
        None => CallOptions::new(),
    };
    Ok(Admitted {
        route,
        options,
        key,
    })
}

/// The access log's line for a call (never a body, never a key: its name).
fn log(path: &str, model: &str, key: Option<&Key>, res: &Response, started: Instant) {
    tracing::info!(
        target: "nova_gateway::access",
        method = "POST",
        path,
        model,
        key = key.map_or("-", |k| k.name.as_str()),
        status = res.status().as_u16(),
        ms = started.elapsed().as_secs_f64() * 1000.0,
    );
}

/// The key and the body of a call endpoint's request, or the answer refusing it.
async fn front(
    p: Protocol,
    gw: &Gateway,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Option<Arc<Key>>, Bytes), Response> {
    let key = authenticate(p, gw, headers)?;
    let bytes = read_body(p, gw, body).await?;
    if gw.config.server.log_bodies {
        tracing::info!(target: "nova_gateway::bodies", body = %String::from_utf8_lossy(&bytes));
    }
    Ok((key, bytes))
}

/// A plain call made: its reply written by `write`, or its error; counted either way.
async fn plain<T>(
    p: Protocol,
    gw: &Gateway,
    model: &str,
    started: Instant,
    call: impl Future<Output = Result<T, LlmError>>,
    write: impl FnOnce(&T) -> Vec<u8>,
) -> Response {
    let (result, upstream) = measure(call).await;
    let res = match result {
        Ok(reply) => json(StatusCode::OK, write(&reply)),
        Err(e) => error_response(p, &e),
    };
    let added = started.elapsed().saturating_sub(upstream);
    gw.metrics
        .request(model, res.status().as_u16(), Some(added));
    res
}

/// A streamed call opened: its events written by `writer`, or its error; counted either
/// way (the added time up to the stream's opening).
async fn streamed<W: Frames>(
    p: Protocol,
    gw: &Gateway,
    model: &str,
    started: Instant,
    call: impl Future<Output = Result<ChatStream, LlmError>>,
    writer: W,
) -> Response {
    let (opened, upstream) = measure(call).await;
    let res = match opened {
        Ok(stream) => sse(stream, writer),
        Err(e) => error_response(p, &e),
    };
    let added = started.elapsed().saturating_sub(upstream);
    gw.metrics
        .request(model, res.status().as_u16(), Some(added));
    res
}

async fn chat(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Response {
    let (p, started) = (Protocol::OpenAi, Instant::now());
    let (key, bytes) = match front(p, &gw, &headers, body).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let call = match request::chat(&bytes) {
        Ok(c) => c,
        Err(e) => return error_response(p, &e),
    };
    let Admitted {
        route,
        options,
        key,
    } = match admit(p, &gw, key, &call.model) {
        Ok(a) => a,
        Err(res) => return res,
    };
    let mut req = call.request;
    if let Err(e) = req.validate() {
        return error_response(p, &e);
    }
    req.model = Some(route.upstream_model.clone());
    let (id, created, model) = (gw.next_id("chatcmpl"), unix_now(), call.model);
    let res = if call.stream {
        let writer = ChunkWriter::new(Shape::Chat, id, model.clone(), created, call.include_usage);
        let opened = route.provider.chat_stream_with(req, options);
        streamed(p, &gw, &model, started, opened, writer).await
    } else {
        let write = |reply: &_| response::chat(reply, &id, &model, created);
        plain(
            p,
            &gw,
            &model,
            started,
            route.provider.chat_with(req, options),
            write,
        )
        .await
    };
    log(
        "/v1/chat/completions",
        &model,
        key.as_deref(),
        &res,
        started,
    );
    res
}

async fn completions(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Response {
    let (p, started) = (Protocol::OpenAi, Instant::now());
    let (key, bytes) = match front(p, &gw, &headers, body).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let call = match request::completion(&bytes) {
        Ok(c) => c,
        Err(e) => return error_response(p, &e),
    };
    let Admitted {
        route,
        options,
        key,
    } = match admit(p, &gw, key, &call.model) {
        Ok(a) => a,
        Err(res) => return res,
    };
    let mut req = call.request;
    if let Err(e) = req.validate() {
        return error_response(p, &e);
    }
    req.model = Some(route.upstream_model.clone());
    let (id, created, model) = (gw.next_id("cmpl"), unix_now(), call.model);
    let res = if call.stream {
        let writer = ChunkWriter::new(Shape::Text, id, model.clone(), created, call.include_usage);
        let opened = route.provider.complete_stream_with(req, options);
        streamed(p, &gw, &model, started, opened, writer).await
    } else {
        let write = |reply: &_| response::completion(reply, &id, &model, created);
        let call = route.provider.complete_with(req, options);
        plain(p, &gw, &model, started, call, write).await
    };
    log("/v1/completions", &model, key.as_deref(), &res, started);
    res
}

async fn messages(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Response {
    let (p, started) = (Protocol::Anthropic, Instant::now());
    let (key, bytes) = match front(p, &gw, &headers, body).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    // The model first: opaque reasoning sent back is marked as its route's service's.
    let model = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("model").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_default();
    let origin = gw.routes.get(&model).map_or("", |r| r.origin);
    let call = match anthropic::request::messages(&bytes, origin) {
        Ok(c) => c,
        Err(e) => return error_response(p, &e),
    };
    let Admitted {
        route,
        options,
        key,
    } = match admit(p, &gw, key, &call.model) {
        Ok(a) => a,
        Err(res) => return res,
    };
    let mut req = call.request;
    if let Err(e) = req.validate() {
        return error_response(p, &e);
    }
    req.model = Some(route.upstream_model.clone());
    let (id, model) = (gw.next_id("msg"), call.model);
    let res = if call.stream {
        let writer = anthropic::stream::EventWriter::new(id, model.clone());
        let opened = route.provider.chat_stream_with(req, options);
        streamed(p, &gw, &model, started, opened, writer).await
    } else {
        let write = |reply: &_| anthropic::response::message(reply, &id, &model);
        plain(
            p,
            &gw,
            &model,
            started,
            route.provider.chat_with(req, options),
            write,
        )
        .await
    };
    log("/v1/messages", &model, key.as_deref(), &res, started);
    res
}

/// How a protocol writes a stream's events and the error that ends it.
trait Frames: Send + 'static {
    fn event(&mut self, event: &StreamEvent, out: &mut Vec<u8>);
    fn error(&self, err: &LlmError, out: &mut Vec<u8>);
}

impl Frames for ChunkWriter {
    fn event(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        ChunkWriter::event(self, event, out);
    }
    fn error(&self, err: &LlmError, out: &mut Vec<u8>) {
        ChunkWriter::error(self, err, out);
    }
}

impl Frames for anthropic::stream::EventWriter {
    fn event(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        anthropic::stream::EventWriter::event(self, event, out);
    }
    fn error(&self, err: &LlmError, out: &mut Vec<u8>) {
        anthropic::stream::EventWriter::error(self, err, out);
    }
}

/// The SSE response of a stream: each event in the protocol's frames; an error ends it with an
/// error event. Dropping the body (the client went away) drops the stream, which cancels
/// the upstream call and gives back its limits.
fn sse<W: Frames>(stream: ChatStream, writer: W) -> Response {
    let frames = futures_util::stream::unfold(
        (stream, writer, false),
        |(mut stream, mut writer, done)| async move {
            if done {
                return None;
            }
            let mut out = Vec::new();
            let ended = match stream.next().await {
                Some(Ok(event)) => {
                    writer.event(&event, &mut out);
                    matches!(event, StreamEvent::Finish { .. })
                }
                Some(Err(e)) => {
                    writer.error(&e, &mut out);
                    true
                }
                None => {
                    let e = LlmError::new(
                        ErrorKind::StreamInterrupted,
                        "the stream ended without a finish",
                    );
                    writer.error(&e, &mut out);
                    true
                }
            };
            Some((
                Ok::<_, Infallible>(Bytes::from(out)),
                (stream, writer, ended),
            ))
        },
    )
    .filter(|b| std::future::ready(b.as_ref().map_or(true, |b| !b.is_empty())));
    let mut res = Response::new(Body::from_stream(frames));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

async fn models(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let key = match authenticate(Protocol::OpenAi, &gw, &headers) {
        Ok(k) => k,
        Err(res) => return res,
    };
    let names = gw
        .routes
        .names()
        .filter(|n| key.as_ref().is_none_or(|k| k.allows(n)));
    json(StatusCode::OK, response::models(names))
}

async fn metrics(State(gw): State<Arc<Gateway>>) -> Response {
    let mut res = gw.metrics.render().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    res
}

async fn health() -> Response {
    (StatusCode::OK, "ok").into_response()
}

/// Ready while serving; 503 once draining for a shutdown.
async fn ready(State(gw): State<Arc<Gateway>>) -> Response {
    if gw.draining.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response()
    } else {
        (StatusCode::OK, "ready").into_response()
    }
}
