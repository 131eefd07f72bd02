//! A strict check of JSON values against the service's OpenAPI document.
//!
//! It enforces every JSON Schema keyword the document uses, and refuses any other: a
//! keyword it does not know (in a checked schema, or anywhere in the document with
//! [`Document::lint`]) is an error, so the document cannot say more than the tests check.
//!
//! Validation: `type`, `enum`, `const`, `oneOf`, `$ref`, `properties`, `required`,
//! `additionalProperties`, `items`, `minimum`, `maximum`, `minLength`, `maxLength`
//! (in characters), `minItems`, `maxItems`, `pattern` (a regex, unanchored as JSON Schema
//! says), `format` (`date-time`: RFC 3339; `password`: allowed in requests only, so a
//! response that carries one fails). Annotations, not checked: `description`, `title`,
//! `default`, `examples`.

use regex::Regex;
use serde_json::Value;

/// The keywords the checker validates.
const VALIDATION: &[&str] = &[
    "type",
    "enum",
    "const",
    "oneOf",
    "$ref",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "format",
];

/// Keywords that only document.
const ANNOTATIONS: &[&str] = &["description", "title", "default", "examples"];

const TYPES: &[&str] = &[
    "null", "boolean", "integer", "number", "string", "array", "object",
];

const FORMATS: &[&str] = &["date-time", "password"];

/// Which way a value travels: `format: password` may only go to the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Request,
    Response,
}

pub struct Document(pub Value);

impl Document {
    pub fn published() -> Self {
        Document(serde_json::from_str(phsync_service::OPENAPI).unwrap())
    }

    fn resolve<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        while let Some(r) = v.get("$ref").and_then(Value::as_str) {
            let mut cur = &self.0;
            for part in r.trim_start_matches("#/").split('/') {
                cur = &cur[part];
            }
            assert!(!cur.is_null(), "unresolved $ref {r}");
            v = cur;
        }
        v
    }

    /// The (method, path) pairs the document lists, sorted.
    pub fn operations(&self) -> Vec<(String, String)> {
        let mut ops = Vec::new();
        for (path, item) in self.0["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                    ops.push((method.clone(), path.clone()));
                }
            }
        }
        ops.sort();
        ops
    }

    fn operation(&self, method: &str, path: &str) -> &Value {
        let op = &self.0["paths"][path][method];
        assert!(
            !op.is_null(),
            "{method} {path} is not in the OpenAPI document"
        );
        op
    }

    /// Check a response body against the document's schema for that operation and status.
    pub fn check_response(&self, method: &str, path: &str, status: u16, body: &Value) {
        let response = &self.operation(method, path)["responses"][status.to_string()];
        assert!(
            !response.is_null(),
            "{method} {path} answered {status}, which the document does not list"
        );
        let response = self.resolve(response);
        let schema = &response["content"]["application/json"]["schema"];
        if schema.is_null() {
            assert!(
                body.is_null(),
                "{method} {path} {status}: a body the document does not describe"
            );
            return;
        }
        if let Err(e) = self.check_as(Direction::Response, schema, body, "$") {
            panic!("{method} {path} {status}: {e}\nbody: {body}");
        }
    }

    /// Check a request body against the document's schema for that operation.
    pub fn check_request(&self, method: &str, path: &str, body: &Value) -> Result<(), String> {
        let body_spec = self.resolve(&self.operation(method, path)["requestBody"]);
        let schema = &body_spec["content"]["application/json"]["schema"];
        if schema.is_null() {
            return Err(format!("{method} {path} takes no JSON body"));
        }
        self.check_as(Direction::Request, schema, body, "$")
    }

    /// Check a value in a response (see [`Document::check_as`]).
    pub fn check(&self, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
        self.check_as(Direction::Response, schema, v, at)
    }

    /// Check `v` against `schema`, refusing keywords the checker does not know.
    pub fn check_as(
        &self,
        dir: Direction,
        schema: &Value,
        v: &Value,
        at: &str,
    ) -> Result<(), String> {
        known_keywords(schema, at)?;
        if schema.get("$ref").is_some() {
            if let Some(k) = schema
                .as_object()
                .into_iter()
                .flat_map(|o| o.keys())
                .find(|k| *k != "$ref" && !ANNOTATIONS.contains(&k.as_str()))
            {
                return Err(format!("{at}: {k} beside $ref would be ignored"));
            }
        }
        let schema = self.resolve(schema);
        known_keywords(schema, at)?;
        if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
            let ok = options
                .iter()
                .filter(|o| self.check_as(dir, o, v, at).is_ok())
                .count();
            if ok != 1 {
                return Err(format!(
                    "{at}: matches {ok} of the oneOf options, not exactly one"
                ));
            }
        }
        if let Some(c) = schema.get("const") {
            if c != v {
                return Err(format!("{at}: {v} is not {c}"));
            }
        }
        if let Some(e) = schema.get("enum").and_then(Value::as_array) {
            if !e.contains(v) {
                return Err(format!("{at}: {v} is not one of {e:?}"));
            }
        }
        if let Some(t) = schema.get("type") {
            let types: Vec<&str> = match t {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            let actual = match v {
                Value::Null => "null",
                Value::Bool(_) => "boolean",
                Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            let fits =
                types.contains(&actual) || (actual == "integer" && types.contains(&"number"));
            if !fits {
                return Err(format!("{at}: {actual} where the document says {types:?}"));
            }
        }
        if let Some(n) = v.as_f64() {
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
                if n < min {
                    return Err(format!("{at}: {n} < minimum {min}"));
                }
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
                if n > max {
                    return Err(format!("{at}: {n} > maximum {max}"));
                }
            }
        }
        if let Some(s) = v.as_str() {
            check_string(dir, schema, s, at)?;
        }
        if let Some(obj) = v.as_object() {
            let props = schema.get("properties").and_then(Value::as_object);
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for r in required.iter().filter_map(Value::as_str) {
                    if !obj.contains_key(r) {
                        return Err(format!("{at}: required property {r} is missing"));
                    }
                }
            }
            for (k, val) in obj {
                let path = format!("{at}.{k}");
                match (
                    props.and_then(|p| p.get(k)),
                    schema.get("additionalProperties"),
                ) {
                    (Some(s), _) => self.check_as(dir, s, val, &path)?,
                    (None, Some(Value::Bool(false))) => {
                        return Err(format!("{at}: property {k} is not in the document"))
                    }
                    (None, Some(extra @ Value::Object(_))) => {
                        self.check_as(dir, extra, val, &path)?
                    }
                    (None, _) => {}
                }
            }
        }
        if let Some(arr) = v.as_array() {
            let count = |k: &str| schema.get(k).and_then(Value::as_u64);
            if let Some(min) = count("minItems") {
                if (arr.len() as u64) < min {
                    return Err(format!("{at}: {} items < minItems {min}", arr.len()));
                }
            }
            if let Some(max) = count("maxItems") {
                if arr.len() as u64 > max {
                    return Err(format!("{at}: {} items > maxItems {max}", arr.len()));
                }
            }
            if let Some(items) = schema.get("items") {
                for (i, item) in arr.iter().enumerate() {
                    self.check_as(dir, items, item, &format!("{at}[{i}]"))?;
                }
            }
        }
        Ok(())
    }

    /// Every schema of the document (components, parameters, bodies, responses, headers),
    /// with where it is.
    fn schemas(&self) -> Vec<(String, &Value)> {
        let mut out = Vec::new();
        for (name, s) in self.0["components"]["schemas"]
            .as_object()
            .into_iter()
            .flatten()
        {
            out.push((format!("components.schemas.{name}"), s));
        }
        let mut responses: Vec<(String, &Value)> = Vec::new();
        for (name, r) in self.0["components"]["responses"]
            .as_object()
            .into_iter()
            .flatten()
        {
            responses.push((format!("components.responses.{name}"), r));
        }
        for (path, item) in self.0["paths"].as_object().into_iter().flatten() {
            let mut parameters: Vec<(String, &Value)> = Vec::new();
            for p in item["parameters"].as_array().into_iter().flatten() {
                parameters.push((format!("{path}.parameters"), p));
            }
            for (method, op) in item.as_object().into_iter().flatten() {
                let at = format!("{method} {path}");
                for p in op["parameters"].as_array().into_iter().flatten() {
                    parameters.push((format!("{at}.parameters"), p));
                }
                for (media, c) in op["requestBody"]["content"]
                    .as_object()
                    .into_iter()
                    .flatten()
                {
                    out.push((format!("{at}.requestBody.{media}"), &c["schema"]));
                }
                for (status, r) in op["responses"].as_object().into_iter().flatten() {
                    responses.push((format!("{at}.responses.{status}"), r));
                }
            }
            for (at, p) in parameters {
                out.push((format!("{at}.{}", p["name"]), &p["schema"]));
            }
        }
        for (at, r) in responses {
            for (media, c) in r["content"].as_object().into_iter().flatten() {
                out.push((format!("{at}.{media}"), &c["schema"]));
            }
            for (name, h) in r["headers"].as_object().into_iter().flatten() {
                out.push((format!("{at}.headers.{name}"), &h["schema"]));
            }
        }
        out
    }

    /// Every schema in the document uses only keywords, types and formats the checker
    /// enforces, and every pattern compiles; the problems found, empty if none.
    pub fn lint(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (at, schema) in self.schemas() {
            lint_schema(schema, &at, &mut problems);
        }
        problems
    }
}

fn known_keywords(schema: &Value, at: &str) -> Result<(), String> {
    let Some(obj) = schema.as_object() else {
        return Err(format!("{at}: the schema is not an object: {schema}"));
    };
    match obj
        .keys()
        .find(|k| !VALIDATION.contains(&k.as_str()) && !ANNOTATIONS.contains(&k.as_str()))
    {
        Some(k) => Err(format!(
            "{at}: the schema uses {k}, which the checker does not enforce"
        )),
        None => Ok(()),
    }
}

fn lint_schema(schema: &Value, at: &str, problems: &mut Vec<String>) {
    if let Err(e) = known_keywords(schema, at) {
        problems.push(e);
        return;
    }
    let types: Vec<&Value> = match &schema["type"] {
        Value::Array(a) => a.iter().collect(),
        Value::Null => vec![],
        t => vec![t],
    };
    for t in types {
        if !t.as_str().is_some_and(|t| TYPES.contains(&t)) {
            problems.push(format!("{at}: unknown type {t}"));
        }
    }
    if let Some(f) = schema.get("format") {
        if !f.as_str().is_some_and(|f| FORMATS.contains(&f)) {
            problems.push(format!("{at}: unknown format {f}"));
        }
    }
    if let Some(p) = schema.get("pattern") {
        if let Err(e) = p
            .as_str()
            .ok_or("not a string".to_string())
            .and_then(|p| Regex::new(p).map(drop).map_err(|e| e.to_string()))
        {
            problems.push(format!("{at}: pattern {p}: {e}"));
        }
    }
    for k in ["minLength", "maxLength", "minItems", "maxItems"] {
        if schema.get(k).is_some_and(|n| n.as_u64().is_none()) {
            problems.push(format!("{at}: {k} is not a non-negative integer"));
        }
    }
    for k in ["minimum", "maximum"] {
        if schema.get(k).is_some_and(|n| !n.is_number()) {
            problems.push(format!("{at}: {k} is not a number"));
        }
    }
    for (name, s) in schema["properties"].as_object().into_iter().flatten() {
        lint_schema(s, &format!("{at}.{name}"), problems);
    }
    if let Some(s) = schema.get("items") {
        lint_schema(s, &format!("{at}[]"), problems);
    }
    if let Some(s @ Value::Object(_)) = schema.get("additionalProperties") {
        lint_schema(s, &format!("{at}.*"), problems);
    }
    for (i, s) in schema["oneOf"].as_array().into_iter().flatten().enumerate() {
        lint_schema(s, &format!("{at}.oneOf[{i}]"), problems);
    }
}

fn check_string(dir: Direction, schema: &Value, s: &str, at: &str) -> Result<(), String> {
    let chars = s.chars().count() as u64;
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
        if chars < min {
            return Err(format!("{at}: {chars} characters < minLength {min}"));
        }
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
        if chars > max {
            return Err(format!("{at}: {chars} characters > maxLength {max}"));
        }
    }
    if let Some(p) = schema.get("pattern") {
        let p = p
            .as_str()
            .ok_or_else(|| format!("{at}: pattern is not a string"))?;
        let re = Regex::new(p).map_err(|e| format!("{at}: pattern {p}: {e}"))?;
        if !re.is_match(s) {
            // Values that fail a pattern may be secrets (digests): say where, not what.
            return Err(format!("{at}: the value does not match the pattern {p}"));
        }
    }
    match schema.get("format").map(|f| f.as_str()) {
        None => {}
        Some(Some("date-time")) => {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|e| format!("{at}: {s:?} is not an RFC 3339 date-time: {e}"))?;
        }
        Some(Some("password")) if dir == Direction::Response => {
            return Err(format!(
                "{at}: a value of format password in a response (passwords only go in)"
            ));
        }
        Some(Some("password")) => {}
        Some(f) => return Err(format!("{at}: unknown format {f:?}")),
    }
    Ok(())
}
