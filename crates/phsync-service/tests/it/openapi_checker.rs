//! The OpenAPI checker enforces every keyword the document uses and refuses any other.

use phsync_testkit::openapi::{Direction, Document};
use serde_json::{json, Value};

fn schema<'a>(doc: &'a Document, name: &str) -> &'a Value {
    &doc.0["components"]["schemas"][name]
}

fn refused(doc: &Document, dir: Direction, schema: &Value, v: &Value, keyword: &str) {
    match doc.check_as(dir, schema, v, "$") {
        Ok(()) => panic!("{v} passed {schema}, which it breaks ({keyword})"),
        Err(e) => assert!(e.contains(keyword), "{keyword}: {e}"),
    }
}

fn user() -> Value {
    json!({
        "user_principal_name": "a@phs.test", "source_anchor": null, "display_name": null,
        "enabled": true, "origin": "cloud", "created_at": "2024-05-01T12:00:00.123456Z",
        "password": null, "locked_until": null, "risks": [],
    })
}

const DIGEST: &str =
    "v1;PPH1_MD4,0123456789abcdef0123,1000,0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef;";

#[test]
fn the_document_uses_only_what_the_checker_enforces() {
    let doc = Document::published();
    assert_eq!(doc.lint(), Vec::<String>::new());
    let mut with_unknown = doc.0.clone();
    with_unknown["components"]["schemas"]["User"]["properties"]["user_principal_name"]
        ["uniqueItems"] = json!(true);
    let problems = Document(with_unknown).lint();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("uniqueItems"), "{problems:?}");
}

#[test]
fn valid_values_pass() {
    let doc = Document::published();
    doc.check(schema(&doc, "User"), &user(), "$").unwrap();
    let mut marked = user();
    marked["risks"] = json!([{"kind": "leaked_credentials", "detected_at": "2024-05-01T12:00:00Z", "breach_count": null}]);
    doc.check(schema(&doc, "User"), &marked, "$").unwrap();
    let creds = json!({"credentials": [
        {"source_anchor": "AAAA", "digest": DIGEST, "changed_at": "2024-05-01T12:00:00+02:00"},
        {"source_anchor": "AAAA", "digest": DIGEST.trim_end_matches(';'), "changed_at": "2024-05-01T12:00:00Z"},
        {"source_anchor": "AAAA", "digest": DIGEST, "changed_at": "2024-05-01T12:00:00Z",
         "leak_check": {"leaked": true, "breach_count": 3, "block_sign_in": true}},
        {"source_anchor": "AAAA", "digest": DIGEST, "changed_at": "2024-05-01T12:00:00Z",
         "leak_check": {"leaked": false}},
    ]});
    doc.check_request("post", "/v1/sync/credentials", &creds)
        .unwrap();
    let token =
        json!({"id": "0123456789abcdef", "name": "a", "role": "agent", "source": "phs.test"});
    doc.check(schema(&doc, "TokenInfo"), &token, "$").unwrap();
}

#[test]
fn a_value_breaking_each_keyword_is_refused() {
    let doc = Document::published();
    let resp = Direction::Response;

    // pattern: a token id that is not 16 lower-case hex digits; a malformed digest.
    let token = json!({"id": "0123456789ABCDEF", "name": "a", "role": "admin", "source": null});
    refused(&doc, resp, schema(&doc, "TokenInfo"), &token, "pattern");
    let bad_digest = json!({"credentials": [
        {"source_anchor": "AAAA", "digest": "v1;PPH1_MD4,00,1000,00;", "changed_at": "2024-05-01T12:00:00Z"}
    ]});
    let e = doc
        .check_request("post", "/v1/sync/credentials", &bad_digest)
        .unwrap_err();
    assert!(e.contains("pattern") && !e.contains("PPH1_MD4,00,"), "{e}");
    // ... and the digest's iteration count is bounded by the pattern.
    let too_many = DIGEST.replace(",1000,", ",1000001,");
    let e = doc
        .check_request(
            "post",
            "/v1/sync/credentials",
            &json!({"credentials": [{"source_anchor": "A", "digest": too_many, "changed_at": "2024-05-01T12:00:00Z"}]}),
        )
        .unwrap_err();
    assert!(e.contains("pattern"), "{e}");

    // format date-time.
    let mut u = user();
    u["locked_until"] = json!("tomorrow");
    refused(&doc, resp, schema(&doc, "User"), &u, "RFC 3339");
    u = user();
    u["created_at"] = json!("2024-05-01 12:00:00");
    refused(&doc, resp, schema(&doc, "User"), &u, "RFC 3339");

    // format password: in a request, fine; in a response, a leak.
    let password = json!({"type": "string", "format": "password"});
    doc.check_as(Direction::Request, &password, &json!("hunter2"), "$")
        .unwrap();
    refused(&doc, resp, &password, &json!("hunter2"), "password");

    // minLength: an empty source anchor; maxLength: a 1,025-character UPN (AD's limit + 1).
    let spec = |anchor: &str, upn: &str| json!({"users": [{"source_anchor": anchor, "user_principal_name": upn, "enabled": true}]});
    let e = doc
        .check_request("post", "/v1/sync/users", &spec("", "a@phs.test"))
        .unwrap_err();
    assert!(e.contains("minLength"), "{e}");
    let long = format!("{}@phs.test", "a".repeat(1025 - 9));
    assert_eq!(long.chars().count(), 1025);
    let e = doc
        .check_request("post", "/v1/sync/users", &spec("AAAA", &long))
        .unwrap_err();
    assert!(e.contains("maxLength"), "{e}");
    doc.check_request("post", "/v1/sync/users", &spec("AAAA", &long[1..]))
        .unwrap();
    let e = doc
        .check_request("post", "/v1/users", &json!({"user_principal_name": long}))
        .unwrap_err();
    assert!(e.contains("maxLength"), "{e}");

    // maxItems: 1001 users; minItems: a policy violation without problems.
    let users: Vec<Value> = (0..1001)
        .map(|i| json!({"source_anchor": format!("A{i}"), "user_principal_name": format!("u{i}@phs.test"), "enabled": true}))
        .collect();
    let e = doc
        .check_request("post", "/v1/sync/users", &json!({ "users": users }))
        .unwrap_err();
    assert!(e.contains("maxItems"), "{e}");
    let error = json!({"error": {"code": "policy_violation", "message": "m", "problems": []}});
    refused(&doc, resp, schema(&doc, "ErrorBody"), &error, "minItems");

    // minimum / maximum.
    let limit = json!({"type": "integer", "minimum": 1, "maximum": 10000});
    refused(&doc, resp, &limit, &json!(0), "minimum");
    refused(&doc, resp, &limit, &json!(10001), "maximum");

    // The keywords checked before: type, enum, const, required, additionalProperties, oneOf.
    let mut u = user();
    u["enabled"] = json!("yes");
    refused(&doc, resp, schema(&doc, "User"), &u, "boolean");
    u = user();
    u["origin"] = json!("ldap");
    refused(&doc, resp, schema(&doc, "User"), &u, "one of");
    u = user();
    u.as_object_mut().unwrap().remove("locked_until");
    refused(&doc, resp, schema(&doc, "User"), &u, "required");
    u = user();
    u["secret"] = json!(1);
    refused(&doc, resp, schema(&doc, "User"), &u, "not in the document");
    let applied = json!({"result": "stale"});
    refused(
        &doc,
        resp,
        schema(&doc, "CredentialOutcome"),
        &applied,
        "oneOf",
    );
    refused(
        &doc,
        resp,
        &json!({"const": "applied"}),
        &json!("stale"),
        "is not",
    );

    // A keyword the checker does not know fails the check instead of passing silently.
    let unknown = json!({"type": "integer", "multipleOf": 2});
    refused(&doc, resp, &unknown, &json!(3), "multipleOf");
    refused(&doc, resp, &unknown, &json!(4), "multipleOf");
    let beside_ref = json!({"$ref": "#/components/schemas/Timestamp", "maxLength": 3});
    refused(
        &doc,
        resp,
        &beside_ref,
        &json!("2024-05-01T12:00:00Z"),
        "beside $ref",
    );
}
