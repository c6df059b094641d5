//! The query routes, over articles ([`Article`]): typed filters, orderings,
//! pages with a cursor and a total, aggregates per group, `EXPLAIN QUERY
//! PLAN` per shard, and raw SQL (administrative).
//!
//! | route | answer |
//! |---|---|
//! | `POST /articles` `{"id":<integer>,"slug","author","title","likes":<integer>}` | `201` the article |
//! | `GET /articles/query?<filters>&order=..&limit=..&offset=..&cursor=..&total=1&partial=1` | `{"rows":[articles],"next":<cursor>\|null,"total":n\|null,"failed":[{"shard","code","message"}]}` |
//! | `GET /articles/count?<filters>` | `{"count":n}`: the rows the filters pass |
//! | `GET /articles/stats?<filters>&group=author,likes&min_count=..&min_sum=..&max_avg=..` | `[{<group columns>..,"count","sum","avg","min","max"}]` of `likes`, one object per group in ascending group order (one object in all without `group`) |
//! | `GET /articles/explain?<filters>&order=..&limit=..` | `[{"shard","steps":[..]}]`: `EXPLAIN QUERY PLAN` of the page's statement on each shard the query reads |
//! | `POST /admin/sql/articles/{id}` (admin) `<raw>` | raw SQL on the shard of article `id` (`404` if none) |
//! | `POST /admin/sql/articles/by-slug/{slug}` (admin) `<raw>` | raw SQL on the shard of the article with that slug (`404` if none) |
//! | `POST /admin/sql/shards/{name}` (admin) `<raw>` | raw SQL on shard `name` (`404 unknown_shard` if there is none) |
//! | `POST /admin/sql/shards` (admin) `<raw>` | raw SQL on every shard |
//!
//! # Filters, orderings, pages
//!
//! Each filter given is ANDed: `id=` (pins the row's shard: one shard is
//! read), `ids=1,2,..` (`IN`), `slug=` (pins the row's shard through the
//! lookup), `author=`, `authors=a,b` (`IN`), `not_author=`
//! (`NOT (author = ..)`), `min_likes=`, `max_likes=` (both: `BETWEEN`),
//! `title_like=` (`LIKE`: `%`, `_`).
//!
//! `order=likes_desc,author_asc`: terms `<column>_asc` / `<column>_desc`
//! over `id`, `slug`, `author`, `title`, `likes`; the id, ascending, always
//! ends the ordering. `limit` is the page size; `next` is where the next
//! page starts (`null` on the last page, and without a limit): pass it back
//! as `cursor=` with the same filters and order. `offset=` skips rows (not
//! with a cursor). `total=1` adds the count of every row the filters pass.
//! A failed shard fails a query with `500 shards_failed` naming it, unless
//! `partial=1`: then the page holds the rows of the shards that answered
//! and lists the others in `failed`. Unknown or repeated parameters, and a
//! cursor of another ordering, are `400`.
//!
//! `stats` groups by `group=` (`author`, `likes`, or both comma-separated)
//! and keeps the groups with `count >= min_count`, `sum >= min_sum` and
//! `avg <= max_avg` (each if given). Aggregates are merged from each
//! shard's partial counts and sums: the average is exact, never an average
//! of averages.
//!
//! # Raw SQL
//!
//! `<raw>` is `{"op","sql","params"?:[..]}`, and `op` is
//! - on one shard: `run` → `{"shard","changed"}`, `first` → `{"shard","row":[..]|null}`,
//!   `all` → `{"shard","rows":[[..],..]}`;
//! - on every shard: `run` → `[{"shard","changed"},..]`, `all` → `[{"shard","rows"},..]`
//!   in shard order, and `merged` (with `"order":[[<column>,"asc"|"desc"],..]` and
//!   `"limit"?`) → `{"rows":[[..],..]}`: every shard's rows as one list,
//!   ordered by result column positions (0 is the first) and limited once,
//!   after the merge.
//!
//! Parameters are JSON scalars, always bound (`?1`, ...), never spliced in;
//! rows are arrays of JSON values in select-list order. Raw SQL bypasses
//! the router's claims and fences and can read or change anything, hence
//! the administrative token.

use collegedb::cloudflare::Cloudflare;
use collegedb::query::{avg, count, max, min, sum, Having};
use collegedb::{Column, Cursor, Filter, Merge, Order, Query, RawShard, Value};
use serde::Deserialize;
use serde_json::{json, Map, Value as Json};
use worker::{Method, Request};

use crate::http::{self, json as reply, ApiError, ApiResult};
use crate::models::Article;
use crate::routes::Db;

/// Query parameters; each is read at most once, and any left over is an error.
struct Params(Vec<(String, String)>);

impl Params {
    fn take(&mut self, name: &str) -> Option<String> {
        let i = self.0.iter().position(|(n, _)| n == name)?;
        Some(self.0.remove(i).1)
    }

    fn integer(&mut self, name: &str) -> Result<Option<i64>, ApiError> {
        self.take(name).map(|v| http::integer_id(&v)).transpose()
    }

    fn count(&mut self, name: &str) -> Result<Option<u64>, ApiError> {
        self.take(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("`{name}` must be a non-negative integer"))
                })
            })
            .transpose()
    }

    fn flag(&mut self, name: &str) -> Result<bool, ApiError> {
        match self.take(name).as_deref() {
            None | Some("0" | "false") => Ok(false),
            Some("1" | "true" | "") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "`{name}` must be 1 or 0, not `{other}`"
            ))),
        }
    }

    /// Refuses the parameters nobody read.
    fn done(self) -> Result<(), ApiError> {
        match self.0.first() {
            Some((name, _)) => Err(ApiError::bad_request(format!(
                "unknown or repeated query parameter `{name}`"
            ))),
            None => Ok(()),
        }
    }
}

/// The filters of the query string, ANDed.
fn filter(p: &mut Params) -> Result<Filter<Article>, ApiError> {
    let mut f = Filter::all();
    if let Some(id) = p.integer("id")? {
        f = f.and(Article::ID.eq(id));
    }
    if let Some(ids) = p.take("ids") {
        let mut parsed = Vec::new();
        for id in ids.split(',') {
            parsed.push(http::integer_id(id)?);
        }
        f = f.and(Article::ID.is_in(parsed));
    }
    if let Some(slug) = p.take("slug") {
        f = f.and(Article::SLUG.eq(slug.as_str()));
    }
    if let Some(author) = p.take("author") {
        f = f.and(Article::AUTHOR.eq(author.as_str()));
    }
    if let Some(authors) = p.take("authors") {
        f = f.and(Article::AUTHOR.is_in(authors.split(',')));
    }
    if let Some(author) = p.take("not_author") {
        f = f.and(!Article::AUTHOR.eq(author.as_str()));
    }
    f = f.and(match (p.integer("min_likes")?, p.integer("max_likes")?) {
        (Some(low), Some(high)) => Article::LIKES.between(low, high),
        (Some(low), None) => Article::LIKES.ge(low),
        (None, Some(high)) => Article::LIKES.le(high),
        (None, None) => Filter::all(),
    });
    if let Some(pattern) = p.take("title_like") {
        f = f.and(Article::TITLE.like(pattern));
    }
    Ok(f)
}

fn direction<T>(column: Column<Article, T>, descending: bool) -> Order<Article> {
    if descending {
        column.desc()
    } else {
        column.asc()
    }
}

/// `order=likes_desc,id_asc`.
fn ordering(p: &mut Params) -> Result<Vec<Order<Article>>, ApiError> {
    let Some(order) = p.take("order") else {
        return Ok(Vec::new());
    };
    let mut terms = Vec::new();
    for term in order.split(',') {
        let bad = || {
            ApiError::bad_request(format!(
                "order term `{term}`: expected <column>_asc or <column>_desc over id, slug, author, title, likes"
            ))
        };
        let (column, descending) = match term.rsplit_once('_') {
            Some((column, "asc")) => (column, false),
            Some((column, "desc")) => (column, true),
            _ => return Err(bad()),
        };
        terms.push(match column {
            "id" => direction(Article::ID, descending),
            "slug" => direction(Article::SLUG, descending),
            "author" => direction(Article::AUTHOR, descending),
            "title" => direction(Article::TITLE, descending),
            "likes" => direction(Article::LIKES, descending),
            _ => return Err(bad()),
        });
    }
    Ok(terms)
}

/// Filters, ordering, limit, offset and cursor.
fn query(p: &mut Params) -> Result<Query<Article>, ApiError> {
    let mut query = Article::query().filter(filter(p)?);
    for term in ordering(p)? {
        query = query.order_by(term);
    }
    if let Some(limit) = p.count("limit")? {
        query = query.limit(limit);
    }
    if let Some(offset) = p.count("offset")? {
        query = query.offset(offset);
    }
    if let Some(cursor) = p.take("cursor") {
        query = query.after(cursor.parse::<Cursor>()?);
    }
    Ok(query)
}

/// A result value as JSON (a blob as an array of bytes).
fn json_of(value: Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Integer(i) => json!(i),
        Value::Real(r) => json!(r),
        Value::Text(t) => Json::String(t),
        Value::Blob(b) => json!(b),
    }
}

fn row_json(row: Vec<Value>) -> Json {
    Json::Array(row.into_iter().map(json_of).collect())
}

/// A JSON scalar as a bound value: `true`/`false` are 1/0.
fn value_of(json: &Json) -> Result<Value, ApiError> {
    Ok(match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Integer(i64::from(*b)),
        Json::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Value::Integer(i),
            (None, _) if n.is_u64() => return Err(http::out_of_range(&n.to_string())),
            (None, Some(r)) => Value::Real(r),
            (None, None) => return Err(ApiError::bad_request(format!("parameter {n}"))),
        },
        Json::String(s) => Value::Text(s.clone()),
        other => {
            return Err(ApiError::bad_request(format!(
                "a parameter must be a JSON scalar, not {}",
                http::to_json(other)
            )))
        }
    })
}

/// The `/articles/...` routes (`rest` is the path after `articles`).
pub async fn articles(req: &mut Request, db: &Db, method: Method, rest: &[&str]) -> ApiResult {
    if method == Method::Post && rest.is_empty() {
        let article: Article = http::body(req).await?;
        article.insert(db).await?;
        return reply(201, &article);
    }
    let mut p = Params(http::query_pairs(req)?);
    match (method.clone(), rest) {
        (Method::Get, ["query"]) => {
            let mut query = query(&mut p)?;
            if p.flag("total")? {
                query = query.with_total();
            }
            if p.flag("partial")? {
                query = query.partial();
            }
            p.done()?;
            let page = query.page(db).await?;
            let failed: Vec<Json> = page
                .failed
                .iter()
                .map(|f| json!({ "shard": f.shard, "code": f.error.code(), "message": f.error.to_string() }))
                .collect();
            reply(
                200,
                &json!({
                    "rows": page.rows,
                    "next": page.next.map(|c| c.to_string()),
                    "total": page.total,
                    "failed": failed,
                }),
            )
        }
        (Method::Get, ["count"]) => {
            let filter = filter(&mut p)?;
            p.done()?;
            let n = Article::query().filter(filter).count(db).await?;
            reply(200, &json!({ "count": n }))
        }
        (Method::Get, ["stats"]) => stats(db, p).await,
        (Method::Get, ["explain"]) => {
            let query = query(&mut p)?;
            p.done()?;
            let plans: Vec<Json> = query
                .explain(db)
                .await?
                .into_iter()
                .map(|plan| json!({ "shard": plan.shard, "steps": plan.steps }))
                .collect();
            reply(200, &plans)
        }
        _ => Err(ApiError::not_found(format!(
            "no route {method} /articles/{}",
            rest.join("/")
        ))),
    }
}

/// The names of the aggregates `stats` returns, in order.
const AGGREGATES: [&str; 5] = ["count", "sum", "avg", "min", "max"];

/// `GET /articles/stats`: count, sum, avg, min and max of `likes`, per group.
async fn stats(db: &Db, mut p: Params) -> ApiResult {
    let filter = filter(&mut p)?;
    let groups = p.take("group");
    let mut having: Option<Having<Article>> = None;
    let mut keep = |h: Having<Article>| {
        having = Some(match having.take() {
            Some(before) => before.and(h),
            None => h,
        });
    };
    if let Some(n) = p.integer("min_count")? {
        keep(count().ge(n));
    }
    if let Some(n) = p.integer("min_sum")? {
        keep(sum(Article::LIKES).ge(n));
    }
    if let Some(a) = p.take("max_avg") {
        let a = collegedb::cloudflare::parse_f64(&a)
            .ok_or_else(|| ApiError::bad_request("`max_avg` must be a number"))?;
        keep(avg(Article::LIKES).le(Value::Real(a)));
    }
    p.done()?;
    let aggregates = [
        count(),
        sum(Article::LIKES),
        avg(Article::LIKES),
        min(Article::LIKES),
        max(Article::LIKES),
    ];
    let query = Article::query().filter(filter);
    let (names, rows): (Vec<&str>, Vec<Vec<Value>>) = match groups.as_deref() {
        None => {
            if having.is_some() {
                return Err(ApiError::bad_request(
                    "min_count, min_sum and max_avg filter groups: give `group` too",
                ));
            }
            (Vec::new(), vec![query.aggregate(db, &aggregates).await?])
        }
        Some(groups) => {
            let names: Vec<&str> = groups.split(',').collect();
            let bad = |name: &str| {
                ApiError::bad_request(format!("cannot group by `{name}`: only author and likes"))
            };
            let mut grouped = match names[0] {
                "author" => query.group_by(Article::AUTHOR),
                "likes" => query.group_by(Article::LIKES),
                other => return Err(bad(other)),
            };
            for name in &names[1..] {
                grouped = match *name {
                    "author" => grouped.group_by(Article::AUTHOR),
                    "likes" => grouped.group_by(Article::LIKES),
                    other => return Err(bad(other)),
                };
            }
            if let Some(having) = having {
                grouped = grouped.having(having);
            }
            let rows = grouped.aggregate(db, &aggregates).await?;
            (names, rows)
        }
    };
    let out: Vec<Json> = rows
        .into_iter()
        .map(|row| {
            // Inserted one by one: collecting into a map sorts the pairs
            // first, which would compile a stable sort for this map alone.
            let mut object = Map::new();
            for (name, value) in names.iter().chain(AGGREGATES.iter()).zip(row) {
                object.insert((*name).to_owned(), json_of(value));
            }
            Json::Object(object)
        })
        .collect();
    reply(200, &out)
}

/// The body of the raw SQL routes.
#[derive(Deserialize)]
struct Raw {
    op: String,
    sql: String,
    #[serde(default)]
    params: Vec<Json>,
    /// `merged` only: `[[column, "asc"|"desc"], ..]`.
    #[serde(default)]
    order: Vec<(usize, String)>,
    /// `merged` only.
    #[serde(default)]
    limit: Option<usize>,
}

fn unknown_op(op: &str, allowed: &str) -> ApiError {
    ApiError::bad_request(format!("unknown op `{op}`: expected {allowed}"))
}

/// `POST /admin/sql/...` (`rest` is the path after `sql`); the caller checked the token.
pub async fn raw(req: &mut Request, db: &Db, rest: &[&str]) -> ApiResult {
    let raw: Raw = http::body(req).await?;
    let mut params = Vec::with_capacity(raw.params.len());
    for param in &raw.params {
        params.push(value_of(param)?);
    }
    match rest {
        ["articles", "by-slug", slug] => {
            on_one(db.raw_for_key(Article::SLUG, *slug).await?, &raw, &params).await
        }
        ["articles", id] => {
            let id = http::integer_id(id)?;
            on_one(db.raw_for_key(Article::ID, id).await?, &raw, &params).await
        }
        ["shards", name] => on_one(db.raw_on_shard(name)?, &raw, &params).await,
        ["shards"] => on_every(db, &raw, &params).await,
        _ => Err(ApiError::not_found(format!(
            "no route POST /admin/sql/{}",
            rest.join("/")
        ))),
    }
}

async fn on_one(shard: RawShard<'_, Cloudflare>, raw: &Raw, params: &[Value]) -> ApiResult {
    let name = shard.name().to_owned();
    let (sql, params) = (raw.sql.as_str(), params);
    match raw.op.as_str() {
        "run" => {
            let changed = shard.run(sql, params).await?;
            reply(200, &json!({ "shard": name, "changed": changed }))
        }
        "first" => {
            let row: Option<Vec<Value>> = shard.first(sql, params).await?;
            reply(200, &json!({ "shard": name, "row": row.map(row_json) }))
        }
        "all" => {
            let rows: Vec<Vec<Value>> = shard.all(sql, params).await?;
            let rows: Vec<Json> = rows.into_iter().map(row_json).collect();
            reply(200, &json!({ "shard": name, "rows": rows }))
        }
        op => Err(unknown_op(op, "run, first or all")),
    }
}

async fn on_every(db: &Db, raw: &Raw, params: &[Value]) -> ApiResult {
    let shards = db.raw_on_every_shard();
    let sql = raw.sql.as_str();
    match raw.op.as_str() {
        "run" => {
            let changed: Vec<Json> = shards
                .run(sql, params)
                .await?
                .into_iter()
                .map(|(shard, changed)| json!({ "shard": shard, "changed": changed }))
                .collect();
            reply(200, &changed)
        }
        "all" => {
            let rows: Vec<Json> = shards
                .all::<Vec<Value>>(sql, params)
                .await?
                .into_iter()
                .map(|(shard, rows)| {
                    let rows: Vec<Json> = rows.into_iter().map(row_json).collect();
                    json!({ "shard": shard, "rows": rows })
                })
                .collect();
            reply(200, &rows)
        }
        "merged" => {
            let mut merge = Merge::new();
            for (column, direction) in &raw.order {
                merge = match direction.as_str() {
                    "asc" => merge.asc(*column),
                    "desc" => merge.desc(*column),
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "order direction `{other}`: expected asc or desc"
                        )))
                    }
                };
            }
            if let Some(limit) = raw.limit {
                merge = merge.limit(limit);
            }
            let rows: Vec<Vec<Value>> = shards.merged(sql, params, &merge).await?;
            let rows: Vec<Json> = rows.into_iter().map(row_json).collect();
            reply(200, &json!({ "rows": rows }))
        }
        op => Err(unknown_op(op, "run, all or merged")),
    }
}
