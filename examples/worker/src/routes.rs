//! The Worker's JSON API.
//!
//! Errors are `status` + `{"error":{"code","message"}}`: `400` for malformed
//! JSON, fields of the wrong type (`bad_request`), `integer_out_of_range` and
//! `too_many_parameters`; `404` for a missing row or an unknown path
//! (`not_found`); `409` for `duplicate_key` and `duplicate_alias`; `500` for
//! anything else (with the `collegedb::Error::code`).
//!
//! | route | answer |
//! |---|---|
//! | `POST /setup` | creates both tables on every shard and registers the shards with the coordinator → `{"ok":true}` (idempotent) |
//! | `POST /users` `{"id","email","username","name","age"?}` | `201` the user |
//! | `GET /users` | every user, ordered by id |
//! | `GET /users/count` | `{"count":n}` |
//! | `GET /users/{id}` | the user, or `404` |
//! | `GET /users/by-email/{email}`, `GET /users/by-username/{username}` | the user, or `404` |
//! | `PUT /users/{id}` `{"email","username","name","age"?}` | the updated user, or `404` |
//! | `DELETE /users/{id}`, `/users/by-email/{email}`, `/users/by-username/{username}` | `{"deleted":true}`, or `404` |
//! | `GET /users/{id}/shard` | `{"shard":"SHARD_1"}`, or `404` |
//! | `POST /posts` `{"id":<integer>,"author_id","title","tags"?}` | `201` the post |
//! | `GET /posts`, `GET /posts/count`, `GET /posts/{id}`, `GET /posts/{id}/shard` | as for users |
//! | `GET /distribution` | `[{"shard":"SHARD_0","users":n,"posts":m},..]` in shard order |
//! | `GET /stats` | the coordinator's key counts: `[{"shard","count","updated_ms"},..]` in shard order |
//! | `GET /region` | `{"region":"enam"}`: the D1 region closest to the caller |
//! | `/coordinator/{path}` (any method) | forwarded as is to the coordinator's `/{path}` |
//!
//! Path segments are percent-decoded (`/users/by-email/ada%40example.com`).
//! The fixed segments win over ids: a user whose id is `count` cannot be read
//! at `/users/count`.

use collegedb::cloudflare::{
    closest_region, Cloudflare, DurableCoordinator, DEFAULT_COORDINATOR_NAME,
};
use collegedb::{Database, Value};
use serde_json::json;
use worker::{Env, Headers, Method, Request, RequestInit, Response};

use crate::http::{self, body, json as reply, ApiError, ApiResult};
use crate::models::{NewPost, NewUser, Post, User, UserChanges};
use crate::{COORDINATOR, POSTS, SHARDS, USERS};

/// Answers one request; failures become their JSON error response.
pub async fn handle(req: Request, env: Env) -> worker::Result<Response> {
    match route(req, &env).await {
        Ok(response) => Ok(response),
        Err(err) => err.into_response(),
    }
}

fn users(env: &Env) -> Result<Database<Cloudflare>, ApiError> {
    Ok(USERS.open(env)?)
}

fn posts(env: &Env) -> Result<Database<Cloudflare>, ApiError> {
    Ok(POSTS.open(env)?)
}

async fn route(mut req: Request, env: &Env) -> ApiResult {
    let url = req.url()?;
    let path = http::segments(url.path())?;
    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
    let method = req.method();
    match (method.clone(), segments.as_slice()) {
        (Method::Post, ["setup"]) => setup(env).await,

        (Method::Post, ["users"]) => {
            let user: User = body::<NewUser>(&mut req).await?.into();
            user.insert(&users(env)?).await?;
            reply(201, &user)
        }
        (Method::Get, ["users"]) => reply(200, &User::list(&users(env)?).await?),
        (Method::Get, ["users", "count"]) => {
            reply(200, &json!({ "count": User::count(&users(env)?).await? }))
        }
        (Method::Get, ["users", "by-email", email]) => found(
            User::find_by_email(&users(env)?, email).await?,
            "user",
            "email",
            email,
        ),
        (Method::Get, ["users", "by-username", username]) => found(
            User::find_by_username(&users(env)?, username).await?,
            "user",
            "username",
            username,
        ),
        (Method::Delete, ["users", "by-email", email]) => deleted(
            User::delete_by_email(&users(env)?, email).await?,
            "user",
            "email",
            email,
        ),
        (Method::Delete, ["users", "by-username", username]) => deleted(
            User::delete_by_username(&users(env)?, username).await?,
            "user",
            "username",
            username,
        ),
        (Method::Get, ["users", id, "shard"]) => {
            let db = users(env)?;
            let shard = db.shard_of::<User>(Value::Text((*id).to_owned())).await?;
            shard_of(shard, "user", id)
        }
        (Method::Get, ["users", id]) => found(User::get(&users(env)?, id).await?, "user", "id", id),
        (Method::Put, ["users", id]) => {
            let user = body::<UserChanges>(&mut req)
                .await?
                .into_user((*id).to_owned());
            user.update(&users(env)?).await?;
            reply(200, &user)
        }
        (Method::Delete, ["users", id]) => {
            deleted(User::delete(&users(env)?, id).await?, "user", "id", id)
        }

        (Method::Post, ["posts"]) => {
            let text = http::body_text(&mut req).await?;
            let new: NewPost = http::parse(&text)?;
            let post = Post {
                id: http::json_integer_id(new.id.get())?,
                author_id: new.author_id,
                title: new.title,
                tags: new.tags,
            };
            post.insert(&posts(env)?).await?;
            reply(201, &post)
        }
        (Method::Get, ["posts"]) => reply(200, &Post::list(&posts(env)?).await?),
        (Method::Get, ["posts", "count"]) => {
            reply(200, &json!({ "count": Post::count(&posts(env)?).await? }))
        }
        (Method::Get, ["posts", id, "shard"]) => {
            let key = http::integer_id(id)?;
            let db = posts(env)?;
            let shard = db.shard_of::<Post>(Value::Integer(key)).await?;
            shard_of(shard, "post", id)
        }
        (Method::Get, ["posts", id]) => {
            let key = http::integer_id(id)?;
            found(Post::get(&posts(env)?, key).await?, "post", "id", id)
        }

        (Method::Get, ["distribution"]) => distribution(env).await,
        (Method::Get, ["stats"]) => reply(200, &users(env)?.stats().await?),
        (Method::Get, ["region"]) => reply(200, &json!({ "region": closest_region(&req).code() })),

        (_, ["coordinator", ..]) => forward(req, env, &url).await,

        _ => Err(ApiError::not_found(format!(
            "no route {method} {}",
            url.path()
        ))),
    }
}

fn found<T: serde::Serialize>(row: Option<T>, what: &str, by: &str, key: &str) -> ApiResult {
    match row {
        Some(row) => reply(200, &row),
        None => Err(ApiError::not_found(format!("no {what} with {by} `{key}`"))),
    }
}

fn deleted(done: bool, what: &str, by: &str, key: &str) -> ApiResult {
    if done {
        reply(200, &json!({ "deleted": true }))
    } else {
        Err(ApiError::not_found(format!("no {what} with {by} `{key}`")))
    }
}

fn shard_of(shard: Option<&str>, what: &str, key: &str) -> ApiResult {
    match shard {
        Some(shard) => reply(200, &json!({ "shard": shard })),
        None => Err(ApiError::not_found(format!("no {what} with id `{key}`"))),
    }
}

/// Creates both tables on every shard, then registers the shards with the coordinator.
async fn setup(env: &Env) -> ApiResult {
    let db = users(env)?;
    User::create_schema(&db).await?;
    Post::create_schema(&db).await?;
    if let Some(coordinator) = db.coordinator() {
        for shard in SHARDS {
            let body = json!({ "shard": shard }).to_string();
            let mut response = send(coordinator, Method::Post, "/shards", Some(body)).await?;
            if !(200..300).contains(&response.status_code()) {
                let text = response.text().await.unwrap_or_default();
                return Err(ApiError::new(
                    500,
                    "coordinator",
                    format!("registering {shard} with the coordinator failed: {text}"),
                ));
            }
        }
    }
    reply(200, &json!({ "ok": true }))
}

/// `count_per_shard` of both models, side by side in shard order.
async fn distribution(env: &Env) -> ApiResult {
    let db = users(env)?;
    let (users, posts) = futures::join!(db.count_per_shard::<User>(), db.count_per_shard::<Post>());
    let (users, posts) = (users?, posts?);
    let rows: Vec<_> = users
        .into_iter()
        .zip(posts)
        .map(|((shard, users), (_, posts))| json!({ "shard": shard, "users": users, "posts": posts }))
        .collect();
    reply(200, &rows)
}

/// Sends one request to the coordinator object.
async fn send(
    coordinator: &DurableCoordinator,
    method: Method,
    path_and_query: &str,
    body: Option<String>,
) -> Result<Response, ApiError> {
    let mut init = RequestInit::new();
    init.with_method(method);
    if let Some(body) = body {
        let headers = Headers::new();
        headers.set("content-type", "application/json")?;
        init.with_headers(headers).with_body(Some(body.into()));
    }
    let request = Request::new_with_init(&format!("https://coordinator{path_and_query}"), &init)?;
    Ok(coordinator.stub().fetch_with_request(request).await?)
}

/// `/coordinator/{rest}` → the coordinator's `/{rest}`, same method, query and body; its answer as is.
async fn forward(mut req: Request, env: &Env, url: &worker::Url) -> ApiResult {
    let rest = url.path().strip_prefix("/coordinator").unwrap_or("");
    let mut target = if rest.is_empty() {
        "/".to_owned()
    } else {
        rest.to_owned()
    };
    if let Some(query) = url.query() {
        target.push('?');
        target.push_str(query);
    }
    let method = req.method();
    let body = match method {
        Method::Get | Method::Head => None,
        _ => Some(http::body_text(&mut req).await?),
    };
    let coordinator = DurableCoordinator::from_env(env, COORDINATOR, DEFAULT_COORDINATOR_NAME)?;
    send(&coordinator, method, &target, body).await
}
