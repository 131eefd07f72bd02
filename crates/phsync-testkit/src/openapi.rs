//! A strict check of JSON values against the service's OpenAPI document: the subset of
//! JSON Schema the document uses (type, properties, required, additionalProperties,
//! items, enum, const, oneOf, $ref, minimum/maximum, pattern-free strings).
#![allow(dead_code)]

use serde_json::Value;

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

    /// The (method, path) pairs the document lists.
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

    /// Check a response body against the document's schema for that operation and status.
    pub fn check_response(&self, method: &str, path: &str, status: u16, body: &Value) {
        let op = &self.0["paths"][path][method];
        assert!(
            !op.is_null(),
            "{method} {path} is not in the OpenAPI document"
        );
        let response = &op["responses"][status.to_string()];
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
        if let Err(e) = self.check(schema, body, "$") {
            panic!("{method} {path} {status}: {e}\nbody: {body}");
        }
    }

    pub fn check(&self, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
        let schema = self.resolve(schema);
        if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
            let ok = options
                .iter()
                .filter(|o| self.check(o, v, at).is_ok())
                .count();
            return if ok == 1 {
                Ok(())
            } else {
                Err(format!(
                    "{at}: matches {ok} of the oneOf options, not exactly one"
                ))
            };
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
        if let (Some(min), Some(n)) = (schema.get("minimum").and_then(Value::as_f64), v.as_f64()) {
            if n < min {
                return Err(format!("{at}: {n} < minimum {min}"));
            }
        }
        if let (Some(max), Some(n)) = (schema.get("maximum").and_then(Value::as_f64), v.as_f64()) {
            if n > max {
                return Err(format!("{at}: {n} > maximum {max}"));
            }
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
                match props.and_then(|p| p.get(k)) {
                    Some(s) => self.check(s, val, &format!("{at}.{k}"))?,
                    None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                        return Err(format!("{at}: property {k} is not in the document"))
                    }
                    None => {}
                }
            }
        }
        if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
            for (i, item) in arr.iter().enumerate() {
                self.check(items, item, &format!("{at}[{i}]"))?;
            }
        }
        Ok(())
    }
}
