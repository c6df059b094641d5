//! The Worker's JSON API.
//!
//! Errors are `status` + `{"error":{"code","message"}}`: `400` for malformed
//! JSON, fields of the wrong type or bad query parameters (`bad_request`),
//! `integer_out_of_range`, `too_many_parameters`, `statement_too_long` and
//! `invalid_query` (a cursor of another query); `403 forbidden` for an
//! administrative route without the right token (see
//! [`admin`](crate::admin)); `404` for a missing row or an unknown path
//! (`not_found`) and an unknown shard (`unknown_shard`); `409` for `duplicate_key`,
//! `duplicate_alias` and `stale_topology`; `503 row_moving` for an update of
//! a row a rebalance kept frozen (retry); `500` for anything else (with the
//! `collegedb::Error::code`).
//!
//! | route | answer |
//! |---|---|
//! | `POST /setup` (admin) | creates the tables (users, posts, articles) on every shard and registers the shards with the coordinator → `{"ok":true}` (idempotent; run it again after appending a shard) |
//! | `POST /users` `{"id","email","username","name","age"?}` | `201` the user |
//! | `GET /users` | every user, ordered by id |
//! | `GET /users/count` | `{"count":n}` |
//! | `GET /users/{id}` | the user, or `404` |
//! | `GET /users/by-email/{email}`, `GET /users/by-username/{username}` | the user, or `404` |
//! | `PUT /users/{id}` `{"email","username","name","age"?}` | the updated user, or `404` |
//! | `DELETE /users/{id}`, `/users/by-email/{email}`, `/users/by-username/{username}` | `{"deleted":true}`, or `404` |
//! | `GET /users/{id}/shard` | `{"shard":"SHARD_1"}`, or `404` |
//! | `POST /v2/setup` (admin) | creates the users table on `SHARD_0` and `SHARD_1` only → `{"ok":true}` |
//! | `/v2/users/...` | every `/users/...` route above, through the two-shard handle |
//! | `POST /admin/rebalance/users` (admin) | moves users to their homes over the three shards → `{"moved","mapped","at_home"}` |
//! | `POST /posts` `{"id":<integer>,"author_id","title","tags"?}` | `201` the post |
//! | `GET /posts`, `GET /posts/count`, `GET /posts/{id}`, `GET /posts/{id}/shard` | as for users |
//! | `POST /articles`, `GET /articles/query`, `/articles/count`, `/articles/stats`, `/articles/explain` | queries: filters, orderings, cursor pages with totals, aggregates per group, plans per shard (see [`queries`](crate::queries)) |
//! | `POST /admin/sql/articles/{id}`, `/admin/sql/articles/by-slug/{slug}`, `/admin/sql/shards/{name}`, `/admin/sql/shards` (admin) | raw SQL (`run`, `first`, `all`, `merged`) on a key's shard, a named shard, or every shard (see [`queries`](crate::queries)) |
//! | `GET /distribution` | `[{"shard":"SHARD_0","users":n,"posts":m},..]` in shard order (rows stored per shard) |
//! | `GET /region` | `{"region":"enam"}`: the D1 region closest to the caller |
//! | `GET /coordinator/{path}` | forwarded as is to the coordinator's `GET /{path}` (`/health`, `/shards`) |
//! | `POST`/`PUT`/`DELETE /coordinator/{path}` (admin) | forwarded as is to the coordinator (`/claim`, `/release`, `/holders`, `/shards`); `/coordinator/flush` also needs `DEPLOYMENT = "development"` |
//!
//! # Two shard lists: `/users` and `/v2/users`
//!
//! `/users/...` opens users over `SHARD_0, SHARD_1, SHARD_2`; `/v2/users/...`
//! over `SHARD_0, SHARD_1`, as a deployment did before `SHARD_2` was
//! appended. Together they replay adding a shard: create the table and
//! write users through `/v2` (after `POST /v2/setup`), then `POST /setup`
//! (the three-shard handle creates the table on `SHARD_2`; the table stays
//! unsettled, so reads still find the users at their two-shard homes), then
//! `POST /admin/rebalance/users` while `/users` keeps serving reads and
//! writes. Once the three-shard handle has written to a shard, the two-shard
//! handle's writes there are refused with `409 stale_topology`.
//!
//! # Calls
//!
//! Every response carries `x-collegedb-calls: shard=N,mappings=N,coordinator=N`:
//! the remote calls of the request's database operations (D1 queries and
//! batches; KV gets, puts, deletes and lists; coordinator requests), summed
//! from the counts collegedb records on each operation's span (see
//! [`Calls`]). Requests the route sends to the coordinator itself
//! (`/coordinator/...`, the shard registration of `/setup`) are not
//! collegedb operations and are not counted.
//!
//! Path segments are percent-decoded (`/users/by-email/ada%40example.com`).
//! The fixed segments win over ids: a user whose id is `count` cannot be read
//! at `/users/count`.

use collegedb::cloudflare::{
    closest_region, Cloudflare, DurableCoordinator, Options, DEFAULT_COORDINATOR_NAME,
};
use collegedb::{Database, Value};
use serde_json::json;
use worker::{Env, Method, Request, Response, ResponseBuilder};

use crate::admin::{require_admin, require_development};
use crate::calls::Calls;
use crate::http::{self, body, json as reply, ApiError, ApiResult};
use crate::models::{Article, NewPost, NewUser, Post, User, UserChanges};
use crate::queries;
use crate::{ARTICLES, COORDINATOR, POSTS, SHARDS, TWO_SHARDS, USERS, USERS_TWO_SHARDS};

/// A database handle (its remote calls are counted from its spans: see [`Calls`]).
pub(crate) type Db = Database<Cloudflare>;

/// The name of the calls header.
const CALLS_HEADER: &str = "x-collegedb-calls";

/// Answers one request; failures become their JSON error response. Every
/// response carries the calls header.
pub async fn handle(req: Request, env: Env) -> Response {
    let calls = Calls::default();
    let response = match calls.count(route(req, &env)).await {
        Ok(response) => Ok(response),
        Err(err) => err.into_response(),
    };
    match response {
        Ok(mut response) => {
            // Best effort: a response whose headers are immutable keeps them.
            let _ = response.headers_mut().set(CALLS_HEADER, &calls.header());
            response
        }
        // The error response could not be built: what `#[event(fetch)]`
        // answers for an `Err`.
        Err(err) => {
            worker::console_error!("{err}");
            ResponseBuilder::new()
                .with_status(500)
                .fixed(b"INTERNAL SERVER ERROR".to_vec())
        }
    }
}

/// The request's per-request view of the databases.
struct Handles<'a> {
    env: &'a Env,
}

impl Handles<'_> {
    fn open(&self, options: &Options) -> Result<Db, ApiError> {
        Ok(options.open(self.env)?)
    }

    fn users(&self) -> Result<Db, ApiError> {
        self.open(&USERS)
    }

    fn posts(&self) -> Result<Db, ApiError> {
        self.open(&POSTS)
    }

    fn articles(&self) -> Result<Db, ApiError> {
        self.open(&ARTICLES)
    }
}

async fn route(mut req: Request, env: &Env) -> ApiResult {
    // `req.path()`, not `req.url()`: parsing would link the `url` crate and its
    // IDNA tables (a large share of the module) for a URL already normalised.
    let raw_path = req.path();
    let path = http::segments(&raw_path)?;
    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
    let method = req.method();
    let handles = Handles { env };
    match (method.clone(), segments.as_slice()) {
        (Method::Post, ["setup"]) => {
            require_admin(&req, env)?;
            setup(&handles).await
        }
        (Method::Post, ["v2", "setup"]) => {
            require_admin(&req, env)?;
            User::create_schema(&handles.open(&USERS_TWO_SHARDS)?).await?;
            reply(200, &json!({ "ok": true, "shards": TWO_SHARDS }))
        }
        (_, ["users", rest @ ..]) => users(&mut req, &handles.users()?, method, rest).await,
        (_, ["v2", "users", rest @ ..]) => {
            users(&mut req, &handles.open(&USERS_TWO_SHARDS)?, method, rest).await
        }
        (Method::Post, ["admin", "rebalance", "users"]) => {
            require_admin(&req, env)?;
            let done = handles.users()?.rebalance::<User>().await?;
            reply(
                200,
                &json!({ "moved": done.moved, "mapped": done.mapped, "at_home": done.at_home }),
            )
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
            post.insert(&handles.posts()?).await?;
            reply(201, &post)
        }
        (Method::Get, ["posts"]) => reply(200, &Post::list(&handles.posts()?).await?),
        (Method::Get, ["posts", "count"]) => reply(
            200,
            &json!({ "count": Post::count(&handles.posts()?).await? }),
        ),
        (Method::Get, ["posts", id, "shard"]) => {
            let key = http::integer_id(id)?;
            let db = handles.posts()?;
            let shard = db.shard_of::<Post>(Value::Integer(key)).await?;
            shard_of(shard, "post", id)
        }
        (Method::Get, ["posts", id]) => {
            let key = http::integer_id(id)?;
            found(Post::get(&handles.posts()?, key).await?, "post", "id", id)
        }

        (_, ["articles", rest @ ..]) => {
            queries::articles(&mut req, &handles.articles()?, method, rest).await
        }
        (Method::Post, ["admin", "sql", rest @ ..]) => {
            require_admin(&req, env)?;
            queries::raw(&mut req, &handles.articles()?, rest).await
        }

        (Method::Get, ["distribution"]) => distribution(&handles).await,
        (Method::Get, ["region"]) => reply(200, &json!({ "region": closest_region(&req).code() })),

        (Method::Get | Method::Head, ["coordinator", ..]) => forward(req, env, &raw_path).await,
        (_, ["coordinator", rest @ ..]) => {
            require_admin(&req, env)?;
            // However the path is spelt (`/flush/`, `%66lush`), a flush needs development.
            if rest.contains(&"flush") || raw_path.to_ascii_lowercase().contains("flush") {
                require_development(env)?;
            }
            forward(req, env, &raw_path).await
        }

        _ => Err(ApiError::not_found(format!("no route {method} {raw_path}"))),
    }
}

/// The `/users/...` routes (`rest` is the path after `users`), on `db`.
async fn users(req: &mut Request, db: &Db, method: Method, rest: &[&str]) -> ApiResult {
    match (method.clone(), rest) {
        (Method::Post, []) => {
            let user: User = body::<NewUser>(req).await?.into();
            user.insert(db).await?;
            reply(201, &user)
        }
        (Method::Get, []) => reply(200, &User::list(db).await?),
        (Method::Get, ["count"]) => reply(200, &json!({ "count": User::count(db).await? })),
        (Method::Get, ["by-email", email]) => found(
            User::find_by_email(db, email).await?,
            "user",
            "email",
            email,
        ),
        (Method::Get, ["by-username", username]) => found(
            User::find_by_username(db, username).await?,
            "user",
            "username",
            username,
        ),
        (Method::Delete, ["by-email", email]) => deleted(
            User::delete_by_email(db, email).await?,
            "user",
            "email",
            email,
        ),
        (Method::Delete, ["by-username", username]) => deleted(
            User::delete_by_username(db, username).await?,
            "user",
            "username",
            username,
        ),
        (Method::Get, [id, "shard"]) => {
            let shard = db.shard_of::<User>(Value::Text((*id).to_owned())).await?;
            shard_of(shard, "user", id)
        }
        (Method::Get, [id]) => found(User::get(db, id).await?, "user", "id", id),
        (Method::Put, [id]) => {
            let user = body::<UserChanges>(req).await?.into_user((*id).to_owned());
            user.update(db).await?;
            reply(200, &user)
        }
        (Method::Delete, [id]) => deleted(User::delete(db, id).await?, "user", "id", id),
        _ => Err(ApiError::not_found(format!(
            "no route {method} /users/{}",
            rest.join("/")
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

/// Creates the tables on every shard, then registers the shards with the coordinator.
async fn setup(handles: &Handles<'_>) -> ApiResult {
    let db = handles.users()?;
    User::create_schema(&db).await?;
    Post::create_schema(&db).await?;
    Article::create_schema(&db).await?;
    let coordinator =
        DurableCoordinator::from_env(handles.env, COORDINATOR, DEFAULT_COORDINATOR_NAME)?;
    for shard in SHARDS {
        let body = http::to_json(&json!({ "shard": shard }));
        let answer = coordinator
            .fetch(Method::Post, "/shards", Some(&body))
            .await?;
        if !(200..300).contains(&answer.status) {
            return Err(ApiError::new(
                500,
                "coordinator",
                format!(
                    "registering {shard} with the coordinator failed: {}",
                    answer.body
                ),
            ));
        }
    }
    reply(200, &json!({ "ok": true }))
}

/// `count_per_shard` of both models, side by side in shard order.
async fn distribution(handles: &Handles<'_>) -> ApiResult {
    let db = handles.users()?;
    let (users, posts) = futures::join!(db.count_per_shard::<User>(), db.count_per_shard::<Post>());
    let (users, posts) = (users?, posts?);
    let rows: Vec<_> = users
        .into_iter()
        .zip(posts)
        .map(|((shard, users), (_, posts))| json!({ "shard": shard, "users": users, "posts": posts }))
        .collect();
    reply(200, &rows)
}

/// `/coordinator/{rest}` → the coordinator's `/{rest}`, same method, query and
/// body; its status and body as they are, in a response of the Worker's own.
async fn forward(mut req: Request, env: &Env, path: &str) -> ApiResult {
    let rest = path.strip_prefix("/coordinator").unwrap_or("");
    let mut target = if rest.is_empty() {
        "/".to_owned()
    } else {
        rest.to_owned()
    };
    if let Some(query) = http::query(&req) {
        target.push('?');
        target.push_str(&query);
    }
    let method = req.method();
    let body = match method {
        Method::Get | Method::Head => None,
        _ => Some(http::body_text(&mut req).await?),
    };
    let coordinator = DurableCoordinator::from_env(env, COORDINATOR, DEFAULT_COORDINATOR_NAME)?;
    let answer = coordinator.fetch(method, &target, body.as_deref()).await?;
    let mut response = Response::ok(answer.body)?.with_status(answer.status);
    if let Some(content_type) = answer.content_type {
        response.headers_mut().set("content-type", &content_type)?;
    }
    Ok(response)
}
