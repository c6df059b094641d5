//! HTTP plumbing: the error shape, JSON bodies, path segments, integer ids.

use serde::de::DeserializeOwned;
use serde::Serialize;
use worker::{Request, Response, ResponseBuilder};

/// A failed request: `status` and `{"error":{"code","message"}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(404, "not_found", message)
    }

    pub fn into_response(self) -> worker::Result<Response> {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        respond(self.status, serde_json::to_string(&body))
    }
}

impl From<collegedb::Error> for ApiError {
    fn from(err: collegedb::Error) -> Self {
        let status = match err.code() {
            "integer_out_of_range"
            | "too_many_parameters"
            | "statement_too_long"
            | "invalid_query" => 400,
            "not_found" | "unknown_shard" => 404,
            "duplicate_key" | "duplicate_alias" | "stale_topology" => 409,
            // Retryable: a rebalance is moving the row.
            "row_moving" => 503,
            _ => 500,
        };
        ApiError::new(status, err.code(), err.to_string())
    }
}

impl From<worker::Error> for ApiError {
    fn from(err: worker::Error) -> Self {
        ApiError::new(500, "internal", err.to_string())
    }
}

pub type ApiResult = Result<Response, ApiError>;

/// A JSON response with `status`.
pub fn json<T: Serialize>(status: u16, value: &T) -> ApiResult {
    Ok(respond(status, serde_json::to_string(value))?)
}

/// The response of serialized JSON, as `Response::from_json` makes it: only
/// the serialization is compiled once per body type.
fn respond(status: u16, body: serde_json::Result<String>) -> worker::Result<Response> {
    let body =
        body.map_err(|_| worker::Error::Json(("Failed to encode data to json".into(), 500)))?;
    Ok(ResponseBuilder::new()
        .with_status(status)
        .with_header("content-type", "application/json")?
        .fixed(body.into_bytes()))
}

/// A JSON value as compact text, as its `Display` writes it, without the
/// pretty printer that `Display` also carries.
pub fn to_json(value: &serde_json::Value) -> String {
    // Writing a JSON value into a string cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

/// The request body as text.
pub async fn body_text(req: &mut Request) -> Result<String, ApiError> {
    req.text()
        .await
        .map_err(|e| ApiError::bad_request(format!("the body could not be read: {e}")))
}

/// Parses a JSON body; malformed JSON, missing fields and fields of the wrong type are `400 bad_request`.
pub fn parse<'a, T: serde::Deserialize<'a>>(text: &'a str) -> Result<T, ApiError> {
    serde_json::from_str(text).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// Parses an owned JSON body.
pub async fn body<T: DeserializeOwned>(req: &mut Request) -> Result<T, ApiError> {
    let text = body_text(req).await?;
    parse(&text)
}

/// The request's query string, without the `?`. Read from the serialized URL
/// workerd hands over, where the first `?` starts the query and a `#` could
/// only start a fragment (both are percent-encoded anywhere else).
pub fn query(req: &Request) -> Option<String> {
    let url = req.inner().url();
    let (_, rest) = url.split_once('?')?;
    Some(rest.split('#').next().unwrap_or(rest).to_owned())
}

/// The request's query parameters, `name=value` pairs in order, each
/// percent-decoded (`+` is a space); a pair without `=` has an empty value.
pub fn query_pairs(req: &Request) -> Result<Vec<(String, String)>, ApiError> {
    let Some(query) = query(req) else {
        return Ok(Vec::new());
    };
    let decode = |text: &str| {
        let text = text.replace('+', " ");
        percent_encoding::percent_decode_str(&text)
            .decode_utf8()
            .map(|decoded| decoded.into_owned())
            .map_err(|_| ApiError::bad_request(format!("query parameter `{text}` is not UTF-8")))
    };
    let mut pairs = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        pairs.push((decode(name)?, decode(value)?));
    }
    Ok(pairs)
}

/// The path's segments, percent-decoded one by one (so `%2F` stays inside
/// its segment); empty segments (doubled or trailing slashes) are dropped.
pub fn segments(path: &str) -> Result<Vec<String>, ApiError> {
    let mut segments = Vec::new();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        let decoded = percent_encoding::percent_decode_str(segment)
            .decode_utf8()
            .map_err(|_| ApiError::bad_request(format!("path segment `{segment}` is not UTF-8")))?;
        segments.push(decoded.into_owned());
    }
    Ok(segments)
}

/// An id too large for any key type; ids that fit an `i64` but not D1
/// (beyond ±2^53) are refused by the backend before any remote call.
pub fn out_of_range(text: &str) -> ApiError {
    collegedb::Error::IntegerOutOfRange {
        value: text.to_owned(),
        target: "an i64 key",
    }
    .into()
}

fn is_integer_literal(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// An integer id written in decimal (`42`, `-7`).
///
/// Integers beyond `i64` are `400 integer_out_of_range`, reported as written
/// (never rounded); anything else is `400 bad_request`.
pub fn integer_id(text: &str) -> Result<i64, ApiError> {
    let text = text.trim();
    if !is_integer_literal(text) {
        return Err(ApiError::bad_request(format!(
            "`{text}` is not an integer id"
        )));
    }
    text.parse::<i64>().map_err(|_| out_of_range(text))
}

/// An integer id given as a JSON value, from its JSON text: a plain integer
/// as in [`integer_id`]; a number in exponent or decimal form (`1e3`, `5.0`)
/// if it is integral; never a string, fraction or other type.
pub fn json_integer_id(raw: &str) -> Result<i64, ApiError> {
    let text = raw.trim();
    if is_integer_literal(text) {
        return integer_id(text);
    }
    let is_number = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
    match collegedb::cloudflare::parse_f64(text) {
        Some(n) if is_number && n.is_finite() && n.fract() == 0.0 => {
            // From 2^53 on an f64 may not be the number written: refuse, never round.
            if n.abs() < collegedb::cloudflare::JS_MAX_EXACT_INTEGER as f64 {
                Ok(n as i64)
            } else {
                Err(out_of_range(text))
            }
        }
        _ => Err(ApiError::bad_request(format!(
            "`id` must be an integer, not {text}"
        ))),
    }
}
