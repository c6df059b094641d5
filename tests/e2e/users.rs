//! The test users and the three keys each is reached by.

use serde_json::{json, Value};

use super::harness::{expect, expect_error, seg, Client, Resp};

#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub username: String,
    pub name: String,
    pub age: Option<u32>,
}

impl User {
    pub fn nth(i: usize) -> User {
        User {
            id: format!("user-{i:03}"),
            // Some addresses need percent-encoding in a path segment.
            email: if i % 10 == 7 {
                format!("user.{i}+tag@example.com")
            } else {
                format!("user{i}@example.com")
            },
            username: format!("user_{i}"),
            name: format!("User Number {i}"),
            age: i.is_multiple_of(2).then_some(18 + i as u32 % 50),
        }
    }

    pub fn create_body(&self) -> Value {
        let mut v = self.update_body();
        v["id"] = json!(self.id);
        v
    }

    pub fn update_body(&self) -> Value {
        let mut v = json!({"email": self.email, "username": self.username, "name": self.name});
        if let Some(age) = self.age {
            v["age"] = json!(age);
        }
        v
    }

    pub fn matches(&self, v: &Value) -> Result<(), String> {
        let age_ok = match self.age {
            Some(a) => v.get("age").and_then(Value::as_u64) == Some(a as u64),
            None => v.get("age").is_none_or(Value::is_null),
        };
        ensure!(
            v.get("id").and_then(Value::as_str) == Some(self.id.as_str())
                && v.get("email").and_then(Value::as_str) == Some(self.email.as_str())
                && v.get("username").and_then(Value::as_str) == Some(self.username.as_str())
                && v.get("name").and_then(Value::as_str) == Some(self.name.as_str())
                && age_ok,
            "expected user {:?}, got {v}",
            self
        );
        Ok(())
    }

    /// The user a JSON body describes.
    pub fn from_json(v: &Value) -> Option<User> {
        Some(User {
            id: v.get("id")?.as_str()?.to_owned(),
            email: v.get("email")?.as_str()?.to_owned(),
            username: v.get("username")?.as_str()?.to_owned(),
            name: v.get("name")?.as_str()?.to_owned(),
            age: v.get("age").and_then(Value::as_u64).map(|a| a as u32),
        })
    }
}

/// The three keys a user is reached by, each with its own route: the checks
/// run the same requests through each of them.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Key {
    Id,
    Email,
    Username,
}

impl Key {
    pub const ALL: [Key; 3] = [Key::Id, Key::Email, Key::Username];

    /// (path prefix, route as named in the timing summary after the method).
    fn route(self) -> (&'static str, &'static str) {
        match self {
            Key::Id => ("/users/", "/users/{id}"),
            Key::Email => ("/users/by-email/", "/users/by-email/{email}"),
            Key::Username => ("/users/by-username/", "/users/by-username/{username}"),
        }
    }

    /// The timing class of `method` on this key's route.
    pub fn class(self, method: &str) -> String {
        format!("{method} {}", self.route().1)
    }

    /// The path of the user whose key is `value`.
    pub fn path(self, value: &str) -> String {
        format!("{}{}", self.route().0, seg(value))
    }

    pub fn name(self) -> &'static str {
        match self {
            Key::Id => "id",
            Key::Email => "email",
            Key::Username => "username",
        }
    }

    pub fn of(self, u: &User) -> &str {
        match self {
            Key::Id => &u.id,
            Key::Email => &u.email,
            Key::Username => &u.username,
        }
    }

    pub fn set(self, u: &mut User, value: &str) {
        *match self {
            Key::Id => &mut u.id,
            Key::Email => &mut u.email,
            Key::Username => &mut u.username,
        } = value.to_owned();
    }
}

/// The user routes of one handle: `/users` or `/v2/users`.
#[derive(Clone, Copy)]
pub struct Users<'a> {
    pub c: &'a Client,
    /// `""` for the three-shard handle, `"/v2"` for the two-shard one.
    pub prefix: &'static str,
}

impl Users<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }

    fn class(&self, class: &str) -> String {
        match self.prefix {
            "" => class.to_owned(),
            prefix => {
                let (method, route) = class.split_once(' ').unwrap_or(("", class));
                format!("{method} {prefix}{route}")
            }
        }
    }

    pub fn create(&self, u: &User) -> Result<(), String> {
        let path = self.url("/users");
        let r = self
            .c
            .send(&self.class("POST /users"), "POST", &path, &u.create_body())?;
        let v = expect(&format!("POST {path} {}", u.create_body()), r, 201)?;
        u.matches(&v)
            .map_err(|e| format!("POST {path} {}: {e}", u.id))
    }

    /// PUT /users/{id} with `u`'s fields; returns "PUT <path>" and the response.
    pub fn put(&self, u: &User) -> Result<(String, Resp), String> {
        let path = self.url(&Key::Id.path(&u.id));
        let r = self.c.send(
            &self.class(&Key::Id.class("PUT")),
            "PUT",
            &path,
            &u.update_body(),
        )?;
        Ok((format!("PUT {path}"), r))
    }

    /// A PUT that succeeds: 200 with the updated user.
    pub fn put_ok(&self, u: &User) -> Result<(), String> {
        let (what, r) = self.put(u)?;
        u.matches(&expect(&what, r, 200)?)
            .map_err(|e| format!("{what}: {e}"))
    }

    /// GET the user through one of its keys, expecting exactly `u`.
    pub fn get(&self, key: Key, u: &User) -> Result<(), String> {
        let path = self.url(&key.path(key.of(u)));
        let r = self.c.get(&self.class(&key.class("GET")), &path)?;
        let v = expect(&format!("GET {path}"), r, 200)?;
        u.matches(&v).map_err(|e| format!("GET {path}: {e}"))
    }

    /// GET the user with this id, whatever it holds now.
    pub fn fetch(&self, id: &str) -> Result<User, String> {
        let path = self.url(&Key::Id.path(id));
        let r = self.c.get(&self.class(&Key::Id.class("GET")), &path)?;
        let v = expect(&format!("GET {path}"), r, 200)?;
        User::from_json(&v).ok_or(format!("GET {path}: not a user: {v}"))
    }

    /// GET by `key` = `value` must 404 with an error body.
    pub fn expect_404(&self, key: Key, value: &str) -> Result<(), String> {
        let path = self.url(&key.path(value));
        let r = self.c.get(&self.class(&key.class("GET")), &path)?;
        expect_error(&format!("GET {path}"), r, 404, None)
    }

    /// All three keys of a user resolve to it.
    pub fn resolves(&self, u: &User) -> Result<(), String> {
        Key::ALL.into_iter().try_for_each(|k| self.get(k, u))
    }

    /// None of the three keys of a user resolves.
    pub fn gone(&self, u: &User) -> Result<(), String> {
        Key::ALL
            .into_iter()
            .try_for_each(|k| self.expect_404(k, k.of(u)))
    }

    /// `/users/{id}/shard`.
    pub fn shard(&self, id: &str) -> Result<String, String> {
        let path = self.url(&format!("/users/{}/shard", seg(id)));
        let r = self.c.get(&self.class("GET /users/{id}/shard"), &path)?;
        let v = expect(&format!("GET {path}"), r, 200)?;
        v.get("shard")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(format!("GET {path}: no \"shard\" in {v}"))
    }

    pub fn count(&self) -> Result<u64, String> {
        let path = self.url("/users/count");
        let v = expect(
            &format!("GET {path}"),
            self.c.get(&self.class("GET /users/count"), &path)?,
            200,
        )?;
        v.get("count")
            .and_then(Value::as_u64)
            .ok_or(format!("GET {path}: expected {{\"count\":n}}, got {v}"))
    }

    /// `GET /users`: every user.
    pub fn list(&self) -> Result<Vec<Value>, String> {
        let path = self.url("/users");
        let v = expect(
            &format!("GET {path}"),
            self.c.get(&self.class("GET /users"), &path)?,
            200,
        )?;
        match v {
            Value::Array(users) => Ok(users),
            other => Err(format!("GET {path}: expected an array, got {other}")),
        }
    }
}
