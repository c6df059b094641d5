//! End-to-end suite: queries across the three D1 shards of the example
//! Worker under workerd (`wrangler dev --local`), through its article
//! routes (`examples/worker/src/queries.rs`): typed filters, orderings with
//! limits and offsets, cursor pages walked to the end, totals, aggregates
//! per group with a group filter, `EXPLAIN QUERY PLAN` per shard, every raw
//! SQL hatch (on a key's shard by primary key and by lookup, on a named
//! shard, on every shard: rows per shard and merged), partial results with
//! a failing shard, and the remote calls of a query that pins a key.
//!
//! Every expected answer is computed here from the rows the suite inserted.
//! Ignored by plain `cargo test` (it needs the local Cloudflare tools); run
//! it with the other end-to-end suites (`scripts/test.sh`), or alone:
//!
//! ```text
//! scripts/cloudflare-tools.sh >/dev/null && \
//!   cargo test --test e2e_query -- --include-ignored --nocapture
//! ```
//!
//! See `tests/e2e_workerd.rs` for what every suite does around its checks,
//! and `tests/e2e/harness.rs` for the environment knobs.

#[path = "e2e/mod.rs"]
#[macro_use]
mod e2e;

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};

use e2e::harness::{
    bearer, expect, expect_body, expect_calls, expect_error, seg, Client, Resp, Runner, Worker,
    SHARDS,
};
use serde_json::{json, Value};

/// Articles inserted: ids `1..=ARTICLES`.
const ARTICLES: i64 = 90;
const AUTHORS: [&str; 5] = ["ada", "bob", "cyd", "dee", "eve"];

/// An article as the suite inserted it.
#[derive(Clone, Debug, PartialEq)]
struct Art {
    id: i64,
    slug: String,
    author: String,
    title: String,
    likes: i64,
}

impl Art {
    /// Uneven authors, many ties on likes, two kinds of titles.
    fn nth(i: i64) -> Art {
        Art {
            id: i,
            slug: format!("article-{i}"),
            author: AUTHORS[((i * i + i) / 3 % 5) as usize].to_owned(),
            title: format!("{} #{i}", if i % 3 == 0 { "Rust" } else { "Notes" }),
            likes: (i * 37 + i / 3) % 23,
        }
    }

    fn body(&self) -> Value {
        json!({"id": self.id, "slug": self.slug, "author": self.author, "title": self.title, "likes": self.likes})
    }

    fn matches(&self, v: &Value) -> bool {
        *v == self.body()
    }
}

/// A column of [`Art`] for orderings.
#[derive(Clone, Copy)]
enum Col {
    Id,
    Slug,
    Author,
    Title,
    Likes,
}

fn cmp_col(a: &Art, b: &Art, col: Col) -> Ordering {
    match col {
        Col::Id => a.id.cmp(&b.id),
        Col::Slug => a.slug.cmp(&b.slug),
        Col::Author => a.author.cmp(&b.author),
        Col::Title => a.title.cmp(&b.title),
        Col::Likes => a.likes.cmp(&b.likes),
    }
}

/// `terms` (column, descending) then the id ascending, as the engine orders
/// (text bytewise: SQLite's BINARY collation, as Rust compares `String`s).
fn sorted(rows: Vec<Art>, terms: &[(Col, bool)]) -> Vec<Art> {
    let mut rows = rows;
    rows.sort_by(|a, b| {
        terms
            .iter()
            .map(|&(col, desc)| {
                let o = cmp_col(a, b, col);
                if desc {
                    o.reverse()
                } else {
                    o
                }
            })
            .chain([a.id.cmp(&b.id)])
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    });
    rows
}

/// A query string, the rows it passes, its ordering, offset and limit.
type OrderCase = (
    &'static str,
    Box<dyn Fn(&Art) -> bool>,
    Vec<(Col, bool)>,
    usize,
    usize,
);

struct Suite {
    c: Client,
    /// `Bearer <ADMIN_TOKEN>`.
    admin: String,
    /// The articles stored now, by id.
    articles: BTreeMap<i64, Art>,
    /// The shard of each article, from the raw hatch on every shard.
    shard_of: BTreeMap<i64, String>,
    /// Measured `x-collegedb-calls` per operation.
    costs: Vec<(String, String)>,
}

/// `/articles/query` and friends: the route class for the latency table.
fn class(path: &str) -> String {
    format!("GET {}", path.split('?').next().unwrap_or(path))
}

/// The `rows` of a page as article ids, checking every row against what was inserted.
fn page_ids(what: &str, page: &Value, articles: &BTreeMap<i64, Art>) -> Result<Vec<i64>, String> {
    let rows = page
        .get("rows")
        .and_then(Value::as_array)
        .ok_or(format!("{what}: no \"rows\" array in {page}"))?;
    rows.iter()
        .map(|row| {
            let id = row
                .get("id")
                .and_then(Value::as_i64)
                .ok_or(format!("{what}: a row without an integer id: {row}"))?;
            let art = articles
                .get(&id)
                .ok_or(format!("{what}: unknown article {row}"))?;
            ensure!(
                art.matches(row),
                "{what}: expected {}, got {row}",
                art.body()
            );
            Ok(id)
        })
        .collect()
}

fn ids_of(rows: &[Art]) -> Vec<i64> {
    rows.iter().map(|a| a.id).collect()
}

impl Suite {
    /// An administrative request (with the bearer token).
    fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Resp, String> {
        let body = body.map(Value::to_string);
        let class = if path.starts_with("/admin/sql/shards/") {
            "POST /admin/sql/shards/{name}".to_owned()
        } else if path.starts_with("/admin/sql/articles/by-slug/") {
            "POST /admin/sql/articles/by-slug/{slug}".to_owned()
        } else if path.starts_with("/admin/sql/articles/") {
            "POST /admin/sql/articles/{id}".to_owned()
        } else {
            format!("{method} {path}")
        };
        self.c
            .req_auth(&class, method, path, body.as_deref(), Some(&self.admin))
    }

    /// Raw SQL at `path` (`/admin/sql/...`), expecting 200.
    fn raw(&self, path: &str, op: &str, sql: &str, params: Value) -> Result<Value, String> {
        let body = json!({"op": op, "sql": sql, "params": params});
        expect(
            &format!("POST {path} {body}"),
            self.admin("POST", path, Some(&body))?,
            200,
        )
    }

    fn get_json(&self, path: &str) -> Result<Value, String> {
        expect(&format!("GET {path}"), self.c.get(&class(path), path)?, 200)
    }

    /// `GET /articles/query?{q}`: the page, its ids, checked rows.
    fn page(&self, q: &str) -> Result<(Value, Vec<i64>), String> {
        let path = format!("/articles/query?{q}");
        let page = self.get_json(&path)?;
        let ids = page_ids(&format!("GET {path}"), &page, &self.articles)?;
        Ok((page, ids))
    }

    /// Every article passing `keep`, in the order of `terms`.
    fn want(&self, keep: impl Fn(&Art) -> bool, terms: &[(Col, bool)]) -> Vec<Art> {
        sorted(
            self.articles
                .values()
                .filter(|a| keep(a))
                .cloned()
                .collect(),
            terms,
        )
    }

    /// `GET /articles/query?{q}` (no limit) answers exactly the articles
    /// passing `keep`, in id order, on one page.
    fn expect_filter(&self, q: &str, keep: impl Fn(&Art) -> bool) -> Result<(), String> {
        let want = ids_of(&self.want(keep, &[]));
        let (page, got) = self.page(q)?;
        ensure!(
            got == want,
            "GET /articles/query?{q}: expected ids {want:?}, got {got:?}"
        );
        ensure!(
            page["next"].is_null() && page["failed"] == json!([]),
            "GET /articles/query?{q}: expected no next page and no failure, got {}",
            json!({"next": page["next"], "failed": page["failed"]})
        );
        Ok(())
    }

    /// `GET /articles/query?{q}` answers exactly the rows of `case`, and a
    /// next cursor if and only if more rows follow.
    fn expect_order(&self, (q, keep, terms, offset, limit): OrderCase) -> Result<(), String> {
        let all = self.want(keep, &terms);
        let want: Vec<i64> = ids_of(&all).into_iter().skip(offset).take(limit).collect();
        let (page, got) = self.page(q)?;
        ensure!(
            got == want,
            "GET /articles/query?{q}: expected {} rows {want:?}, got {} rows {got:?}",
            want.len(),
            got.len()
        );
        let more = all.len() > offset + limit;
        ensure!(
            page["next"].is_string() == more,
            "GET /articles/query?{q}: next is {}, but {} more rows",
            page["next"],
            all.len().saturating_sub(offset + limit)
        );
        Ok(())
    }

    /// Walks `q` (with a limit) page by page with the cursor; returns the
    /// ids in order, the number of pages and the first page's total.
    fn walk(&self, q: &str, limit: usize) -> Result<(Vec<i64>, usize, Value), String> {
        let mut ids = Vec::new();
        let mut pages = 0;
        let mut cursor: Option<String> = None;
        let mut total = Value::Null;
        loop {
            let path = match &cursor {
                None => format!("{q}&limit={limit}&total=1"),
                Some(c) => format!("{q}&limit={limit}&cursor={}", seg(c)),
            };
            let (page, got) = self.page(&path)?;
            if pages == 0 {
                total = page["total"].clone();
            } else {
                ensure!(
                    page["total"].is_null(),
                    "page {pages} of {q}: a total without total=1: {}",
                    page["total"]
                );
            }
            pages += 1;
            ensure!(
                got.len() <= limit,
                "page {pages} of {q}: {} rows, limit {limit}",
                got.len()
            );
            ids.extend(got.iter().copied());
            match page["next"].as_str() {
                Some(next) => {
                    ensure!(
                        got.len() == limit,
                        "page {pages} of {q}: a next cursor after a short page ({} rows)",
                        got.len()
                    );
                    cursor = Some(next.to_owned());
                }
                None => break,
            }
            ensure!(
                pages <= 200,
                "{q}: over 200 pages: the cursor does not advance"
            );
        }
        Ok((ids, pages, total))
    }

    fn cost(&mut self, operation: &str, resp: &Resp) {
        self.costs.push((
            operation.to_owned(),
            resp.calls.clone().unwrap_or_else(|| "(no header)".into()),
        ));
    }

    /// `/articles/stats?{q}` as a list of objects.
    fn stats(&self, q: &str) -> Result<Vec<Value>, String> {
        let path = format!("/articles/stats?{q}");
        let v = self.get_json(&path)?;
        v.as_array()
            .cloned()
            .ok_or(format!("GET {path}: expected an array, got {v}"))
    }
}

/// count, sum, avg, min, max of `likes` over `rows`, as the route names them.
fn aggregates(rows: &[&Art]) -> Value {
    if rows.is_empty() {
        return json!({"count": 0, "sum": null, "avg": null, "min": null, "max": null});
    }
    let sum: i64 = rows.iter().map(|a| a.likes).sum();
    json!({
        "count": rows.len(),
        "sum": sum,
        "avg": sum as f64 / rows.len() as f64,
        "min": rows.iter().map(|a| a.likes).min(),
        "max": rows.iter().map(|a| a.likes).max(),
    })
}

/// `got` equals `want`, with averages compared to 1e-9.
fn same_stats(what: &str, got: &[Value], want: &[Value]) -> Result<(), String> {
    let close = |a: &Value, b: &Value| match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() < 1e-9,
        _ => a == b,
    };
    let same = got.len() == want.len()
        && got.iter().zip(want).all(|(g, w)| {
            let (Some(g), Some(w)) = (g.as_object(), w.as_object()) else {
                return false;
            };
            g.len() == w.len()
                && w.iter().all(|(k, wv)| {
                    g.get(k)
                        .is_some_and(|gv| if k == "avg" { close(gv, wv) } else { gv == wv })
                })
        });
    ensure!(same, "{what}: expected {}, got {}", json!(want), json!(got));
    Ok(())
}

/// Groups of `rows` by `key`, in ascending key order, each with its aggregates.
fn grouped<K: Ord>(
    rows: &[&Art],
    key: impl Fn(&Art) -> K,
    fields: impl Fn(&Art) -> Vec<(&'static str, Value)>,
    keep: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let mut groups: BTreeMap<K, Vec<&Art>> = BTreeMap::new();
    for a in rows {
        groups.entry(key(a)).or_default().push(a);
    }
    groups
        .into_values()
        .filter_map(|members| {
            let mut v = aggregates(&members);
            for (name, value) in fields(members[0]) {
                v[name] = value;
            }
            keep(&v).then_some(v)
        })
        .collect()
}

fn run_checks(s: &mut Runner<Suite>) {
    s.fatal("POST /setup (admin) creates the tables", |s| {
        expect_body(
            "POST /setup",
            s.admin("POST", "/setup", None)?,
            200,
            json!({"ok": true}),
        )
    });
    s.fatal(
        &format!("POST /articles x{ARTICLES} -> 201 with the article"),
        |s| {
            for i in 1..=ARTICLES {
                let art = Art::nth(i);
                let r =
                    s.c.send("POST /articles", "POST", "/articles", &art.body())?;
                let v = expect(&format!("POST /articles {}", art.body()), r, 201)?;
                ensure!(
                    art.matches(&v),
                    "POST /articles: expected {}, got {v}",
                    art.body()
                );
                s.articles.insert(i, art);
            }
            Ok(())
        },
    );
    s.check(
        "POST /articles with a taken slug -> 409 duplicate_alias",
        |s| {
            let mut dup = Art::nth(1);
            dup.id = 10_000;
            let r =
                s.c.send("POST /articles", "POST", "/articles", &dup.body())?;
            expect_error(
                "POST /articles (taken slug)",
                r,
                409,
                Some("duplicate_alias"),
            )
        },
    );

    // --- the raw hatch on every shard first: where each article is ------------
    s.fatal(
        "raw all on every shard: each article on exactly one shard, rows per shard in shard order",
        |s| {
            let v = s.raw(
                "/admin/sql/shards",
                "all",
                "SELECT id FROM articles ORDER BY id",
                json!([]),
            )?;
            let per_shard = v.as_array().ok_or(format!("expected an array, got {v}"))?;
            let names: Vec<&str> = per_shard
                .iter()
                .filter_map(|e| e["shard"].as_str())
                .collect();
            ensure!(
                names == SHARDS,
                "expected shards {SHARDS:?} in order, got {v}"
            );
            for e in per_shard {
                let shard = e["shard"].as_str().unwrap_or_default();
                let rows = e["rows"].as_array().ok_or(format!("no rows in {e}"))?;
                ensure!(!rows.is_empty(), "{shard} holds no article: {v}");
                let mut previous = i64::MIN;
                for row in rows {
                    let id = row[0].as_i64().ok_or(format!("{shard}: row {row}"))?;
                    ensure!(id > previous, "{shard}: ids not ascending: {e}");
                    previous = id;
                    if let Some(other) = s.shard_of.insert(id, shard.to_owned()) {
                        return Err(format!("article {id} is on {other} and {shard}"));
                    }
                }
            }
            let all: Vec<i64> = s.shard_of.keys().copied().collect();
            let want: Vec<i64> = s.articles.keys().copied().collect();
            ensure!(
                all == want,
                "articles on the shards {all:?}, expected {want:?}"
            );
            eprintln!(
                "[e2e]       articles per shard: {:?}",
                per_shard
                    .iter()
                    .map(|e| e["rows"].as_array().map_or(0, Vec::len))
                    .collect::<Vec<_>>()
            );
            Ok(())
        },
    );

    // --- filters ---------------------------------------------------------------
    s.check(
        "no filter, no limit: every article in id order, no next",
        |s| s.expect_filter("", |_| true),
    );
    s.check(
        "filters: =, NOT, >=, <=, BETWEEN, LIKE, and several ANDed",
        |s| {
            s.expect_filter("author=ada", |a| a.author == "ada")?;
            s.expect_filter("not_author=ada", |a| a.author != "ada")?;
            s.expect_filter("min_likes=17", |a| a.likes >= 17)?;
            s.expect_filter("max_likes=3", |a| a.likes <= 3)?;
            s.expect_filter("min_likes=5&max_likes=9", |a| (5..=9).contains(&a.likes))?;
            s.expect_filter(&format!("title_like={}", seg("Rust%")), |a| {
                a.title.starts_with("Rust")
            })?;
            s.expect_filter(&format!("title_like={}", seg("%#1_")), |a| {
                a.title.contains("#1") && a.title.len() == a.title.find("#1").unwrap() + 3
            })?;
            s.expect_filter(
                &format!("author=bob&min_likes=6&title_like={}", seg("Notes%")),
                |a| a.author == "bob" && a.likes >= 6 && a.title.starts_with("Notes"),
            )?;
            s.expect_filter("author=nobody", |_| false)
        },
    );
    s.check(
        "filters: IN of 3 values, and IN of 20 ids (bound as one JSON parameter: json_each)",
        |s| {
            s.expect_filter("authors=ada,eve,nobody", |a| {
                a.author == "ada" || a.author == "eve"
            })?;
            let ids: Vec<i64> = (1..=40).filter(|i| i % 2 == 1).collect();
            let list: Vec<String> = ids.iter().map(i64::to_string).collect();
            s.expect_filter(&format!("ids={}", list.join(",")), |a| ids.contains(&a.id))?;
            let few = [3, 5, 1000];
            s.expect_filter("ids=3,5,1000", |a| few.contains(&a.id))?;
            let many: Vec<String> = (0..30).map(|i| format!("{}", 1000 + i * 3)).collect();
            s.expect_filter(&format!("ids={}&author=ada", many.join(",")), |_| false)
        },
    );
    s.check(
        "filters pinning a key: id=, slug= (lookup), each with its article only",
        |s| {
            s.expect_filter("id=7", |a| a.id == 7)?;
            s.expect_filter("id=7&author=nobody", |_| false)?;
            s.expect_filter("slug=article-12", |a| a.id == 12)?;
            s.expect_filter("id=123456", |_| false)?;
            s.expect_filter("slug=no-such-article", |_| false)
        },
    );

    // --- order and limit ----------------------------------------------------------
    s.check(
        "order + limit: top 20 by likes (ties by id), an author's top 5, two terms, a limit above the rows",
        |s| {
            let cases: [OrderCase; 5] = [
                (
                    "order=likes_desc&limit=20",
                    Box::new(|_| true),
                    vec![(Col::Likes, true)],
                    0,
                    20,
                ),
                (
                    "author=ada&order=likes_desc&limit=5",
                    Box::new(|a| a.author == "ada"),
                    vec![(Col::Likes, true)],
                    0,
                    5,
                ),
                (
                    "order=author_asc,likes_desc&limit=30",
                    Box::new(|_| true),
                    vec![(Col::Author, false), (Col::Likes, true)],
                    0,
                    30,
                ),
                (
                    "order=title_desc,id_desc&limit=7",
                    Box::new(|_| true),
                    vec![(Col::Title, true), (Col::Id, true)],
                    0,
                    7,
                ),
                (
                    "min_likes=10&order=slug_asc&limit=1000",
                    Box::new(|a| a.likes >= 10),
                    vec![(Col::Slug, false)],
                    0,
                    1000,
                ),
            ];
            cases.into_iter().try_for_each(|case| s.expect_order(case))
        },
    );
    s.check(
        "order + limit + offset: rows 16-25 by likes asc, offset 0, an offset past the end",
        |s| {
            let cases: [OrderCase; 3] = [
                (
                    "order=likes_asc&limit=10&offset=15",
                    Box::new(|_| true),
                    vec![(Col::Likes, false)],
                    15,
                    10,
                ),
                (
                    "author=bob&order=likes_desc&limit=4&offset=0",
                    Box::new(|a| a.author == "bob"),
                    vec![(Col::Likes, true)],
                    0,
                    4,
                ),
                (
                    "order=likes_asc&limit=5&offset=200",
                    Box::new(|_| true),
                    vec![(Col::Likes, false)],
                    200,
                    5,
                ),
            ];
            cases.into_iter().try_for_each(|case| s.expect_order(case))
        },
    );

    // --- cursor pages ---------------------------------------------------------------
    s.check(
        "cursor pages of 7 by likes desc walked to the end: every article once, in order; total on page 1",
        |s| {
            let want = ids_of(&s.want(|_| true, &[(Col::Likes, true)]));
            let (got, pages, total) = s.walk("order=likes_desc", 7)?;
            ensure!(got == want, "walked {got:?}, expected {want:?}");
            ensure!(
                pages == want.len().div_ceil(7),
                "{pages} pages for {} rows",
                want.len()
            );
            ensure!(total == json!(want.len()), "total {total}, expected {}", want.len());
            Ok(())
        },
    );
    s.check(
        "cursor pages: a filter and two terms (author asc, likes asc), pages of 4; pages of exactly the row count",
        |s| {
            let keep = |a: &Art| a.author != "cyd" && a.likes >= 4;
            let terms = [(Col::Author, false), (Col::Likes, false)];
            let want = ids_of(&s.want(keep, &terms));
            let (got, _, total) = s.walk("not_author=cyd&min_likes=4&order=author_asc,likes_asc", 4)?;
            ensure!(got == want, "walked {got:?}, expected {want:?}");
            ensure!(total == json!(want.len()), "total {total}, expected {}", want.len());
            // A page size that divides the rows: the last full page says there is no next.
            let ada = ids_of(&s.want(|a| a.author == "ada", &[]));
            let (got, pages, _) = s.walk("author=ada", ada.len())?;
            ensure!(
                got == ada && pages == 1,
                "one page of {} for ada: {pages} pages, {got:?}",
                ada.len()
            );
            Ok(())
        },
    );
    s.check(
        "cursor misuse -> 400 invalid_query (another ordering, garbage, with an offset)",
        |s| {
            let (page, _) = s.page("order=likes_desc&limit=5")?;
            let cursor = page["next"].as_str().ok_or("no next cursor")?.to_owned();
            for q in [
                format!("order=likes_asc&limit=5&cursor={}", seg(&cursor)),
                format!("limit=5&cursor={}", seg(&cursor)),
                "order=likes_desc&limit=5&cursor=not-a-cursor".to_owned(),
                format!("order=likes_desc&limit=5&offset=5&cursor={}", seg(&cursor)),
            ] {
                let path = format!("/articles/query?{q}");
                let r = s.c.get(&class(&path), &path)?;
                expect_error(&format!("GET {path}"), r, 400, Some("invalid_query"))?;
            }
            Ok(())
        },
    );
    s.check(
        "totals and counts: a page of 3 with the total of its filter; /articles/count",
        |s| {
            for (q, keep) in [
                (
                    "author=ada",
                    Box::new(|a: &Art| a.author == "ada") as Box<dyn Fn(&Art) -> bool>,
                ),
                (
                    "min_likes=5&max_likes=9",
                    Box::new(|a: &Art| (5..=9).contains(&a.likes)),
                ),
                ("", Box::new(|_: &Art| true)),
                ("author=nobody", Box::new(|_: &Art| false)),
            ] {
                let n = s.articles.values().filter(|a| keep(a)).count();
                let (page, got) = s.page(&format!("{q}&limit=3&total=1"))?;
                ensure!(
                    page["total"] == json!(n) && got.len() == n.min(3),
                    "{q}: total {} and {} rows, expected {n} and {}",
                    page["total"],
                    got.len(),
                    n.min(3)
                );
                let (page, _) = s.page(&format!("{q}&limit=3"))?;
                ensure!(page["total"].is_null(), "{q}: a total without total=1");
                expect_body(
                    &format!("GET /articles/count?{q}"),
                    s.c.get("GET /articles/count", &format!("/articles/count?{q}"))?,
                    200,
                    json!({"count": n}),
                )?;
            }
            Ok(())
        },
    );

    // --- aggregates ------------------------------------------------------------------
    s.check(
        "aggregates without groups: count, sum, avg, min, max of likes",
        |s| {
            let all: Vec<&Art> = s.articles.values().collect();
            same_stats("GET /articles/stats", &s.stats("")?, &[aggregates(&all)])?;
            let bob: Vec<&Art> = s.articles.values().filter(|a| a.author == "bob").collect();
            same_stats(
                "GET /articles/stats?author=bob",
                &s.stats("author=bob")?,
                &[aggregates(&bob)],
            )?;
            same_stats(
                "GET /articles/stats?author=nobody",
                &s.stats("author=nobody")?,
                &[aggregates(&[])],
            )
        },
    );
    s.check("aggregates grouped by author, in author order", |s| {
        let all: Vec<&Art> = s.articles.values().collect();
        let want = grouped(
            &all,
            |a| a.author.clone(),
            |a| vec![("author", json!(a.author))],
            |_| true,
        );
        ensure!(
            want.len() == AUTHORS.len(),
            "the data should use every author"
        );
        same_stats(
            "GET /articles/stats?group=author",
            &s.stats("group=author")?,
            &want,
        )
    });
    s.check(
        "aggregates grouped by author with a group filter (having count >= n and avg <= x)",
        |s| {
            let all: Vec<&Art> = s.articles.values().collect();
            let by_author = grouped(
                &all,
                |a| a.author.clone(),
                |a| vec![("author", json!(a.author))],
                |_| true,
            );
            // Thresholds that keep some groups and drop others.
            let mut counts: Vec<u64> = by_author
                .iter()
                .filter_map(|g| g["count"].as_u64())
                .collect();
            counts.sort_unstable();
            let min_count = counts[counts.len() / 2];
            let mut avgs: Vec<f64> = by_author.iter().filter_map(|g| g["avg"].as_f64()).collect();
            avgs.sort_by(f64::total_cmp);
            let max_avg = avgs[avgs.len() - 2];
            let want: Vec<Value> = by_author
                .iter()
                .filter(|g| {
                    g["count"].as_u64() >= Some(min_count) && g["avg"].as_f64() <= Some(max_avg)
                })
                .cloned()
                .collect();
            ensure!(
                !want.is_empty() && want.len() < by_author.len(),
                "thresholds count >= {min_count}, avg <= {max_avg} keep {} of {} groups",
                want.len(),
                by_author.len()
            );
            let q = format!("group=author&min_count={min_count}&max_avg={max_avg}");
            same_stats(&format!("GET /articles/stats?{q}"), &s.stats(&q)?, &want)?;
            let min_sum = 100;
            let want: Vec<Value> = by_author
                .iter()
                .filter(|g| g["sum"].as_i64() >= Some(min_sum))
                .cloned()
                .collect();
            let q = format!("group=author&min_sum={min_sum}");
            same_stats(&format!("GET /articles/stats?{q}"), &s.stats(&q)?, &want)
        },
    );
    s.check(
        "aggregates grouped by two columns (author, likes) under a filter",
        |s| {
            let rows: Vec<&Art> = s.articles.values().filter(|a| a.likes >= 12).collect();
            let want = grouped(
                &rows,
                |a| (a.author.clone(), a.likes),
                |a| vec![("author", json!(a.author)), ("likes", json!(a.likes))],
                |_| true,
            );
            let q = "min_likes=12&group=author,likes";
            same_stats(&format!("GET /articles/stats?{q}"), &s.stats(q)?, &want)?;
            let want = grouped(
                &rows,
                |a| a.likes,
                |a| vec![("likes", json!(a.likes))],
                |g| g["count"].as_u64() >= Some(4),
            );
            let q = "min_likes=12&group=likes&min_count=4";
            same_stats(&format!("GET /articles/stats?{q}"), &s.stats(q)?, &want)
        },
    );

    // --- explain -----------------------------------------------------------------------
    s.check(
        "explain: one plan per shard for a fan-out query, using the (author, likes) index; one plan for a pinned id",
        |s| {
            let path = "/articles/explain?author=ada&order=likes_desc&limit=20";
            let v = s.get_json(path)?;
            let plans = v.as_array().ok_or(format!("GET {path}: expected an array, got {v}"))?;
            let shards: Vec<&str> = plans.iter().filter_map(|p| p["shard"].as_str()).collect();
            ensure!(shards == SHARDS, "GET {path}: plans for {shards:?}, expected {SHARDS:?}: {v}");
            for plan in plans {
                let steps = plan["steps"].as_array().ok_or(format!("GET {path}: {plan}"))?;
                ensure!(!steps.is_empty(), "GET {path}: an empty plan: {plan}");
                ensure!(
                    steps.iter().any(|step| step
                        .as_str()
                        .is_some_and(|t| t.contains("articles_author_likes_idx"))),
                    "GET {path}: the plan does not use articles_author_likes_idx: {plan}"
                );
            }
            eprintln!("[e2e]       plan on {}: {}", shards[0], plans[0]["steps"]);
            let path = "/articles/explain?id=7";
            let v = s.get_json(path)?;
            let plans = v.as_array().ok_or(format!("GET {path}: expected an array, got {v}"))?;
            let home = s.shard_of.get(&7).ok_or("no shard known for article 7")?;
            ensure!(
                plans.len() == 1 && plans[0]["shard"].as_str() == Some(home.as_str()),
                "GET {path}: expected one plan, on {home}: {v}"
            );
            Ok(())
        },
    );

    // --- raw SQL -------------------------------------------------------------------------
    s.check(
        "raw SQL needs the admin token: none or a wrong one -> 403",
        |s| {
            let body =
                json!({"op": "all", "sql": "SELECT id FROM articles", "params": []}).to_string();
            for path in [
                "/admin/sql/shards",
                "/admin/sql/shards/SHARD_0",
                "/admin/sql/articles/7",
                "/admin/sql/articles/by-slug/article-7",
            ] {
                for auth in [None, Some(bearer("not-the-token"))] {
                    let r = s.c.req_auth(
                        "POST /admin/sql (refused)",
                        "POST",
                        path,
                        Some(&body),
                        auth.as_deref(),
                    )?;
                    expect_error(
                        &format!("POST {path} ({auth:?})"),
                        r,
                        403,
                        Some("forbidden"),
                    )?;
                }
            }
            Ok(())
        },
    );
    s.check(
        "raw on the shard of a primary key: first, all, run (an UPDATE, seen by a query, then undone)",
        |s| {
            let home = s.shard_of[&7].clone();
            let a = s.articles[&7].clone();
            let v = s.raw(
                "/admin/sql/articles/7",
                "first",
                "SELECT id, slug, likes FROM articles WHERE id = ?1",
                json!([7]),
            )?;
            ensure!(
                v == json!({"shard": home, "row": [7, a.slug, a.likes]}),
                "first: expected row [7, {:?}, {}] on {home}, got {v}",
                a.slug,
                a.likes
            );
            let v = s.raw(
                "/admin/sql/articles/7",
                "first",
                "SELECT id FROM articles WHERE id = ?1",
                json!([-1]),
            )?;
            ensure!(v == json!({"shard": home, "row": null}), "first of nothing: {v}");
            let on_home: Vec<i64> = s
                .shard_of
                .iter()
                .filter(|(_, sh)| **sh == home)
                .map(|(id, _)| *id)
                .collect();
            let v = s.raw(
                "/admin/sql/articles/7",
                "all",
                "SELECT id FROM articles ORDER BY id",
                json!([]),
            )?;
            let want: Vec<Value> = on_home.iter().map(|id| json!([id])).collect();
            ensure!(v == json!({"shard": home, "rows": want}), "all: {v}");
            let v = s.raw(
                "/admin/sql/articles/7",
                "run",
                "UPDATE articles SET likes = likes + ?1 WHERE id = ?2",
                json!([1000, 7]),
            )?;
            ensure!(v == json!({"shard": home, "changed": 1}), "run: {v}");
            s.articles.get_mut(&7).expect("article 7").likes += 1000;
            let (_, top) = s.page("order=likes_desc&limit=1")?;
            ensure!(top == [7], "after the raw UPDATE, the top article is {top:?}, not 7");
            let v = s.raw(
                "/admin/sql/articles/7",
                "run",
                "UPDATE articles SET likes = likes - ?1 WHERE id = ?2",
                json!([1000, 7]),
            )?;
            ensure!(v == json!({"shard": home, "changed": 1}), "undo: {v}");
            s.articles.get_mut(&7).expect("article 7").likes -= 1000;
            let r = s.admin(
                "POST",
                "/admin/sql/articles/123456",
                Some(&json!({"op": "all", "sql": "SELECT 1"})),
            )?;
            expect_error("raw on a missing id", r, 404, Some("not_found"))
        },
    );
    s.check(
        "raw on the shard of a lookup value (slug): all, first; values are bound, never spliced",
        |s| {
            let home = s.shard_of[&12].clone();
            let v = s.raw(
                "/admin/sql/articles/by-slug/article-12",
                "all",
                "SELECT id, author FROM articles WHERE slug = ?1",
                json!(["article-12"]),
            )?;
            let a = &s.articles[&12];
            ensure!(
                v == json!({"shard": home, "rows": [[12, a.author]]}),
                "by slug: expected [[12, {:?}]] on {home}, got {v}",
                a.author
            );
            let v = s.raw(
                "/admin/sql/articles/by-slug/article-12",
                "first",
                "SELECT COUNT(*) FROM articles WHERE slug = ?1 OR title = ?2",
                json!(["x' OR '1'='1", "' OR 1=1 --"]),
            )?;
            ensure!(
                v == json!({"shard": home, "row": [0]}),
                "injection-looking values: {v}"
            );
            let r = s.admin(
                "POST",
                "/admin/sql/articles/by-slug/no-such-article",
                Some(&json!({"op": "all", "sql": "SELECT 1"})),
            )?;
            expect_error("raw on a missing slug", r, 404, Some("not_found"))
        },
    );
    s.check(
        "raw on a named shard: all, first, and an unknown shard -> 404 unknown_shard",
        |s| {
            for shard in SHARDS {
                let path = format!("/admin/sql/shards/{shard}");
                let want: Vec<Value> = s
                    .shard_of
                    .iter()
                    .filter(|(_, sh)| sh.as_str() == shard)
                    .map(|(id, _)| json!([id]))
                    .collect();
                let v = s.raw(
                    &path,
                    "all",
                    "SELECT id FROM articles ORDER BY id",
                    json!([]),
                )?;
                ensure!(
                    v == json!({"shard": shard, "rows": want}),
                    "POST {path}: {v}"
                );
                let v = s.raw(
                    &path,
                    "first",
                    "SELECT COUNT(*), ?1 FROM articles",
                    json!(["tag"]),
                )?;
                ensure!(
                    v == json!({"shard": shard, "row": [want.len(), "tag"]}),
                    "POST {path} first: {v}"
                );
            }
            let r = s.admin(
                "POST",
                "/admin/sql/shards/SHARD_9",
                Some(&json!({"op": "all", "sql": "SELECT 1"})),
            )?;
            expect_error("raw on SHARD_9", r, 404, Some("unknown_shard"))
        },
    );
    s.check(
        "raw on every shard: merged with an order and a limit applied once (top 20 by likes), and run",
        |s| {
            let v = s.c.req_auth(
                "POST /admin/sql/shards",
                "POST",
                "/admin/sql/shards",
                Some(
                    &json!({
                        "op": "merged",
                        "sql": "SELECT likes, id FROM articles ORDER BY likes DESC, id LIMIT ?1",
                        "params": [20],
                        "order": [[0, "desc"], [1, "asc"]],
                        "limit": 20,
                    })
                    .to_string(),
                ),
                Some(&s.admin),
            )?;
            let v = expect("merged", v, 200)?;
            let want: Vec<Value> = s
                .want(|_| true, &[(Col::Likes, true)])
                .iter()
                .take(20)
                .map(|a| json!([a.likes, a.id]))
                .collect();
            ensure!(v == json!({"rows": want}), "merged: expected {}, got {v}", json!(want));
            let v = s.raw(
                "/admin/sql/shards",
                "run",
                "UPDATE articles SET title = title WHERE likes >= ?1",
                json!([15]),
            )?;
            let mut want: BTreeMap<&str, usize> = SHARDS.iter().map(|sh| (*sh, 0)).collect();
            for a in s.articles.values().filter(|a| a.likes >= 15) {
                *want.get_mut(s.shard_of[&a.id].as_str()).expect("a known shard") += 1;
            }
            let want: Vec<Value> = SHARDS
                .iter()
                .map(|sh| json!({"shard": sh, "changed": want[sh]}))
                .collect();
            ensure!(v == json!(want), "run: expected {}, got {v}", json!(want));
            Ok(())
        },
    );

    // --- remote calls ------------------------------------------------------------------
    s.check(
        "calls: a query pinning the primary key reads one shard: x-collegedb-calls shard=1,mappings=0,coordinator=0",
        |s| {
            let r = s.c.get("GET /articles/query", "/articles/query?id=7")?;
            s.cost("query pinned by id (id=7)", &r);
            let v = r.json.clone().unwrap_or_default();
            ensure!(
                r.status == 200 && page_ids("id=7", &v, &s.articles)? == [7],
                "GET /articles/query?id=7: {} {}",
                r.status,
                r.body
            );
            expect_calls("GET /articles/query?id=7", &r, "shard=1,mappings=0,coordinator=0")
        },
    );
    s.check(
        "calls: a fan-out query with a limit reads each shard once (shard=3); record other costs",
        |s| {
            let r = s.c.get(
                "GET /articles/query",
                "/articles/query?author=ada&order=likes_desc&limit=5",
            )?;
            s.cost("query fan-out, limit 5", &r);
            expect_calls("fan-out query", &r, "shard=3,mappings=0,coordinator=0")?;
            for (what, path) in [
                ("query pinned by slug", "/articles/query?slug=article-12"),
                (
                    "query fan-out + total",
                    "/articles/query?order=likes_desc&limit=20&total=1",
                ),
                ("count with a filter", "/articles/count?author=ada"),
                ("stats grouped by author", "/articles/stats?group=author"),
                (
                    "explain fan-out",
                    "/articles/explain?author=ada&order=likes_desc&limit=20",
                ),
            ] {
                let r = s.c.get(&class(path), path)?;
                ensure!(r.status == 200, "GET {path}: {} {}", r.status, r.body);
                s.cost(what, &r);
            }
            Ok(())
        },
    );

    // --- request errors -------------------------------------------------------------------
    s.check("bad query strings -> 400 bad_request", |s| {
        for q in [
            "colour=red",
            "author=a&author=b",
            "order=likes_sideways",
            "order=popularity_desc",
            "limit=-1",
            "id=seven",
            "total=maybe",
        ] {
            let path = format!("/articles/query?{q}");
            let r = s.c.get(&class(&path), &path)?;
            expect_error(&format!("GET {path}"), r, 400, Some("bad_request"))?;
        }
        for q in ["group=title", "min_count=3"] {
            let path = format!("/articles/stats?{q}");
            let r = s.c.get(&class(&path), &path)?;
            expect_error(&format!("GET {path}"), r, 400, Some("bad_request"))?;
        }
        Ok(())
    });

    // --- a failing shard (last: it takes the table away from one shard, then back) ------------
    s.check(
        "a failing shard: strict -> 500 shards_failed naming it; partial=1 -> the other shards' rows and the failure",
        |s| {
            let broken = SHARDS[2];
            let path = format!("/admin/sql/shards/{broken}");
            s.raw(&path, "run", "ALTER TABLE articles RENAME TO articles_away", json!([]))?;
            let outcome = (|| {
                let q = "/articles/query?order=likes_desc&limit=10";
                let r = s.c.get(&class(q), q)?;
                let body = r.body.clone();
                expect_error(&format!("GET {q}"), r, 500, Some("shards_failed"))?;
                ensure!(body.contains(broken), "GET {q}: the error does not name {broken}: {body}");
                let (page, got) = s.page("order=likes_desc&limit=10&partial=1&total=1")?;
                let healthy: Vec<i64> = ids_of(&s.want(|a| s.shard_of[&a.id] != broken, &[(Col::Likes, true)]))
                    .into_iter()
                    .take(10)
                    .collect();
                ensure!(got == healthy, "partial page: expected {healthy:?}, got {got:?}");
                let failed = page["failed"].as_array().cloned().unwrap_or_default();
                ensure!(
                    failed.len() == 1 && failed[0]["shard"] == json!(broken),
                    "partial page: expected one failure on {broken}, got {}",
                    page["failed"]
                );
                eprintln!("[e2e]       failure reported: {}", failed[0]);
                let r = s.c.get("GET /articles/count", "/articles/count")?;
                expect_error("GET /articles/count with a failing shard", r, 500, Some("shards_failed"))
            })();
            // Whatever happened, give the table back.
            s.raw(&path, "run", "ALTER TABLE articles_away RENAME TO articles", json!([]))?;
            outcome?;
            s.expect_filter("", |_| true)
        },
    );
}

#[test]
#[ignore = "needs workerd: run scripts/test.sh"]
fn queries_under_workerd() {
    let (mut worker, token) = Worker::start_development("e2e_query", "query");
    let mut runner = Runner::new(
        "e2e_query",
        Suite {
            c: worker.client(),
            admin: bearer(&token),
            articles: BTreeMap::new(),
            shard_of: BTreeMap::new(),
            costs: Vec::new(),
        },
    );
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| run_checks(&mut runner)));
    worker.stop();
    let mut costs =
        String::from("\n==== e2e_query: remote calls per operation (x-collegedb-calls) ====\n");
    for (operation, calls) in &runner.state.costs {
        costs.push_str(&format!("{operation:<48} {calls}\n"));
    }
    eprintln!("{costs}");
    let latency = runner.state.c.latency_table();
    runner.finish_with(outcome, &latency, "query", &worker);
}
