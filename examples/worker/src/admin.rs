//! Who may use the administrative routes.
//!
//! An administrative request carries `Authorization: Bearer <token>`, where
//! the token is the Worker secret `ADMIN_TOKEN` (`wrangler secret put
//! ADMIN_TOKEN`; locally, `.dev.vars` or `wrangler dev --var`). Without the
//! secret configured, every administrative route is refused. The token is
//! compared in constant time: both sides are hashed with SHA-256 and the
//! digests compared byte by byte without an early exit, so neither the
//! position of the first difference nor the secret's length shows in the
//! time taken.
//!
//! `POST /coordinator/flush` (forget every claim) is also refused unless the
//! var `DEPLOYMENT` is `"development"`.

use sha2::{Digest, Sha256};
use worker::{Env, Request};

use crate::http::ApiError;

/// The secret that holds the administrative bearer token.
const ADMIN_TOKEN: &str = "ADMIN_TOKEN";

/// The var that names the deployment; `development` allows destructive routes.
const DEPLOYMENT: &str = "DEPLOYMENT";

fn forbidden(message: &str) -> ApiError {
    ApiError::new(403, "forbidden", message)
}

/// Refuses the request unless it carries the administrative bearer token.
pub fn require_admin(req: &Request, env: &Env) -> Result<(), ApiError> {
    let expected = env
        .secret(ADMIN_TOKEN)
        .map(|s| s.to_string())
        .unwrap_or_default();
    if expected.is_empty() {
        return Err(forbidden(
            "administrative routes are disabled: no ADMIN_TOKEN secret is configured",
        ));
    }
    let header = req.headers().get("authorization").ok().flatten();
    // The scheme is case-insensitive (RFC 9110); the token is not.
    let token = header.as_deref().and_then(|h| {
        let (scheme, token) = h.split_at_checked(7)?;
        scheme.eq_ignore_ascii_case("bearer ").then_some(token)
    });
    let Some(token) = token else {
        return Err(forbidden(
            "this route needs `Authorization: Bearer <ADMIN_TOKEN>`",
        ));
    };
    if !same_secret(token.trim(), &expected) {
        return Err(forbidden("the bearer token is not the ADMIN_TOKEN"));
    }
    Ok(())
}

/// Refuses the request unless this is a development deployment.
pub fn require_development(env: &Env) -> Result<(), ApiError> {
    let deployment = env
        .var(DEPLOYMENT)
        .map(|v| v.to_string())
        .unwrap_or_default();
    if deployment == "development" {
        Ok(())
    } else {
        Err(forbidden(
            "this route wipes state and is only served when the var DEPLOYMENT is \"development\"",
        ))
    }
}

/// Compares two secrets in time independent of where they differ: equal-length
/// SHA-256 digests, every byte visited.
fn same_secret(given: &str, expected: &str) -> bool {
    let given = Sha256::digest(given.as_bytes());
    let expected = Sha256::digest(expected.as_bytes());
    let difference = given
        .iter()
        .zip(expected.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(difference) == 0
}
