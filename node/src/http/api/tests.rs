//! The API's contract: the OpenAPI document against the router, and the JSON bodies
//! against literal expectations.

use std::collections::BTreeSet;

use serde_json::json;

use super::*;
use crate::core::store::{Direction, Status};

fn document() -> Value {
    serde_json::to_value(openapi()).expect("the document serializes")
}

/// Every operation of the document: (method, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            out.push((method.clone(), path.clone(), op.clone()));
        }
    }
    out
}

/// The routes of this module, written out once.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/identities"),
    ("post", "/identities"),
    ("get", "/identities/{id}"),
    ("delete", "/identities/{id}"),
    ("get", "/identities/{id}/public-key"),
    ("get", "/identities/{id}/invite"),
    ("post", "/identities/{id}/backup"),
    ("get", "/identities/{id}/contacts"),
    ("post", "/identities/{id}/contacts"),
    ("get", "/identities/{id}/contacts/{contact}"),
    ("patch", "/identities/{id}/contacts/{contact}"),
    ("delete", "/identities/{id}/contacts/{contact}"),
    ("get", "/identities/{id}/contacts/{contact}/messages"),
    ("post", "/identities/{id}/contacts/{contact}/messages"),
    (
        "get",
        "/identities/{id}/contacts/{contact}/messages/{message_id}",
    ),
    ("post", "/identities/{id}/contacts/{contact}/read"),
    ("get", "/identities/{id}/requests"),
    ("post", "/identities/{id}/requests/{fingerprint}/accept"),
    ("delete", "/identities/{id}/requests/{fingerprint}"),
    ("post", "/identities/{id}/requests/{fingerprint}/block"),
    ("get", "/identities/{id}/blocked"),
    ("delete", "/identities/{id}/blocked/{fingerprint}"),
    ("get", "/events"),
    ("get", "/status"),
    ("get", "/settings"),
    ("put", "/settings"),
    ("post", "/sign-in"),
    ("get", "/sessions"),
    ("delete", "/sessions/{session}"),
    ("get", "/openapi.json"),
];

#[test]
fn the_document_is_openapi_3_with_its_info_and_security() {
    let text = serde_json::to_string(&*DOCUMENT).expect("serializes");
    let doc: Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(doc, document(), "the served document is openapi()");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "Secure Messenger node API");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let description = doc["info"]["description"].as_str().expect("description");
    for words in [r#"{"error""#, r#""code""#, "Host", "Origin", "Bearer"] {
        assert!(description.contains(words), "{words:?} in {description}");
    }
    let bearer = &doc["components"]["securitySchemes"][BEARER];
    assert_eq!(bearer["type"], "http");
    assert_eq!(bearer["scheme"], "bearer");
    assert_eq!(
        doc["security"],
        json!([{}, { BEARER: [] }]),
        "the token, or nothing on a node started with require_token: false"
    );
}

#[test]
fn the_document_lists_every_route_and_only_those() {
    let doc = document();
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), format!("{PREFIX}{p}")))
        .collect();
    assert_eq!(documented, expected);

    // And the served router has exactly the documented routes. Its Debug output is the
    // only public view of its table: `RouteId(n): "/path"` for the paths, and each route's
    // `allow_header` for its methods (HEAD comes with GET).
    let table = format!("{:?}", router());
    let routes = table.split("fallback_router").next().unwrap_or_default();
    let mut paths = std::collections::BTreeMap::new();
    let mut methods = std::collections::BTreeMap::new();
    for entry in routes.split("RouteId(").skip(1) {
        let Some((id, rest)) = entry.split_once("): ") else {
            continue;
        };
        if let Some(path) = rest.strip_prefix('"') {
            paths.insert(id, path.split('"').next().unwrap_or_default());
        } else if let Some((_, allow)) = rest.split_once("allow_header: Bytes(b\"") {
            methods.insert(id, allow.split('"').next().unwrap_or_default());
        }
    }
    let served: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(id, path)| {
            methods
                .get(id)
                .copied()
                .unwrap_or_default()
                .split(',')
                .filter(|m| *m != "HEAD")
                .map(move |m| (m.to_ascii_lowercase(), format!("{PREFIX}{path}")))
        })
        .collect();
    assert_eq!(served, expected, "router table: {table}");
}

#[test]
fn every_operation_has_a_success_and_a_client_error() {
    for (method, path, op) in operations(&document()) {
        let codes: Vec<&String> = op["responses"]
            .as_object()
            .expect("responses")
            .keys()
            .collect();
        assert!(
            codes.iter().any(|c| c.starts_with('2')),
            "{method} {path}: {codes:?}"
        );
        assert!(
            codes.iter().any(|c| c.starts_with('4')),
            "{method} {path}: {codes:?}"
        );
        assert!(
            codes.contains(&&"403".to_owned()) && codes.contains(&&"401".to_owned()),
            "{method} {path}: the guard's 401 and 403"
        );
        for (code, response) in op["responses"].as_object().expect("responses") {
            if code.starts_with('4') || code.starts_with('5') {
                let schema = if response["$ref"].is_string() {
                    let name = response["$ref"]
                        .as_str()
                        .and_then(|r| r.strip_prefix("#/components/responses/"))
                        .expect("a response reference");
                    document()["components"]["responses"][name]["content"]
                        ["application/json"]["schema"]
                        .clone()
                } else {
                    response["content"]["application/json"]["schema"].clone()
                };
                assert_eq!(
                    schema["$ref"], "#/components/schemas/ErrorJson",
                    "{method} {path} {code}"
                );
            }
        }
    }
}

#[test]
fn path_and_query_parameters_are_described() {
    for (method, path, op) in operations(&document()) {
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        let in_path: BTreeSet<&str> = params
            .iter()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str())
            .collect();
        let in_template: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        assert_eq!(in_path, in_template, "{method} {path}: {params:?}");
        for p in &params {
            assert!(p["description"].is_string(), "{method} {path}: {p}");
        }
    }
    let doc = document();
    let query = |method: &str, path: &str| -> BTreeSet<String> {
        doc["paths"][format!("{PREFIX}{path}")][method]["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "query")
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(
        query("get", "/identities/{id}/contacts/{contact}/messages"),
        BTreeSet::from(["before".to_owned(), "limit".to_owned()])
    );
    assert_eq!(
        query("delete", "/identities/{id}"),
        BTreeSet::from(["confirm".to_owned()])
    );
}

#[test]
fn bodies_streams_and_references_are_in_the_document() {
    let doc = document();
    let paths = &doc["paths"];
    let events = &paths["/api/events"]["get"]["responses"]["200"]["content"];
    assert!(events["text/event-stream"].is_object(), "{events}");
    let pem = &paths["/api/identities/{id}/public-key"]["get"]["responses"]["200"]["content"];
    assert!(pem["application/x-pem-file"].is_object(), "{pem}");
    for (method, path, body) in [
        ("post", "/identities", "NewIdentity"),
        ("post", "/identities/{id}/backup", "BackupRequest"),
        ("post", "/identities/{id}/contacts", "NewContact"),
        (
            "patch",
            "/identities/{id}/contacts/{contact}",
            "ContactChange",
        ),
        (
            "post",
            "/identities/{id}/contacts/{contact}/messages",
            "NewMessage",
        ),
        (
            "post",
            "/identities/{id}/requests/{fingerprint}/accept",
            "Accept",
        ),
        ("put", "/settings", "Settings"),
    ] {
        let content =
            &paths[format!("{PREFIX}{path}")][method]["requestBody"]["content"]["application/json"];
        assert_eq!(
            content["schema"]["$ref"],
            format!("#/components/schemas/{body}"),
            "{method} {path}"
        );
        let schema = &doc["components"]["schemas"][body];
        assert_eq!(
            schema["additionalProperties"], false,
            "{body}: unknown fields are refused"
        );
    }
    // Every reference resolves.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v.as_str()) {
                        ("$ref", Some(r)) => out.push(r.to_owned()),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r.strip_prefix('#').expect("a local reference");
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
}

#[test]
fn the_message_schema_has_the_message_fields() {
    let doc = document();
    let message = &doc["components"]["schemas"]["MessageJson"];
    let properties: BTreeSet<&str> = message["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .map(String::as_str)
        .collect();
    for field in [
        "kind",
        "id",
        "direction",
        "text",
        "sent_at",
        "status",
        "seq",
        "error",
    ] {
        assert!(properties.contains(field), "{field} in {properties:?}");
    }
    let required: BTreeSet<&str> = message["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        !required.contains("error"),
        "error is only there on failure"
    );
    assert!(required.contains("kind") && required.contains("sent_at"));
    assert_eq!(message["properties"]["kind"]["enum"], json!(["message"]));
    assert_eq!(
        doc["components"]["schemas"]["MessageStatus"]["enum"],
        json!(["pending", "sent", "delivered", "received", "failed"])
    );
    let entry = &doc["components"]["schemas"]["EntryJson"];
    assert_eq!(entry["discriminator"]["propertyName"], "kind", "{entry}");
    assert_eq!(
        doc["components"]["schemas"]["GapJson"]["properties"]["kind"]["enum"],
        json!(["gap"])
    );
}

fn message(error: Option<&str>) -> MessageRecord {
    MessageRecord {
        id: "00112233445566778899aabbccddeeff".parse().expect("an id"),
        direction: Direction::Out,
        text: "hello \"there\"".into(),
        sent_ms: 1_764_106_800_123,
        stored_ms: 1_764_106_800_456,
        status: Status::Failed,
        seq: 7,
        error: error.map(str::to_owned),
        forward_secret: false,
    }
}

/// The JSON the API wrote before it had typed responses, byte for byte.
/// A body as the API writes it, against its literal expected text.
#[track_caller]
fn check(body: impl Serialize, expect: &str) {
    assert_eq!(serde_json::to_string(&body).expect("serializes"), expect);
}

#[test]
fn the_bodies_are_pinned() {
    check(
        MessageJson::from(&message(None)),
        r#"{"direction":"out","forward_secret":false,"id":"00112233445566778899aabbccddeeff","kind":"message","sent_at":"2025-11-25T21:40:00.123Z","seq":7,"status":"failed","text":"hello \"there\""}"#,
    );
    check(
        MessageJson::from(&message(Some("the mailbox refused it"))),
        r#"{"direction":"out","error":"the mailbox refused it","forward_secret":false,"id":"00112233445566778899aabbccddeeff","kind":"message","sent_at":"2025-11-25T21:40:00.123Z","seq":7,"status":"failed","text":"hello \"there\""}"#,
    );
    let gap = Entry::Gap {
        missing: 3,
        detected_ms: 5,
        first: Some(2),
    };
    check(
        EntryJson::from(&gap),
        r#"{"detected_at":"1970-01-01T00:00:00.005Z","kind":"gap","missing":3}"#,
    );
    check(
        MessagesJson {
            messages: vec![EntryJson::from(&gap)],
            next_before: None,
        },
        r#"{"messages":[{"detected_at":"1970-01-01T00:00:00.005Z","kind":"gap","missing":3}],"next_before":null}"#,
    );
    for (display_name, expect) in [
        (
            None,
            r#"{"created_at":"1970-01-01T00:00:00.009Z","display_name":null,"fingerprint":"abababababababababababababababababababababababababababababababab","id":"alice"}"#,
        ),
        (
            Some("Alice".to_owned()),
            r#"{"created_at":"1970-01-01T00:00:00.009Z","display_name":"Alice","fingerprint":"abababababababababababababababababababababababababababababababab","id":"alice"}"#,
        ),
    ] {
        let r = IdentityRecord {
            id: "alice".into(),
            display_name,
            fingerprint: crypto::Fingerprint([0xab; 32]),
            created_ms: 9,
        };
        check(IdentityJson::from(&r), expect);
    }
    let request = MessageRequest {
        fingerprint: crypto::Fingerprint([0xcd; 32]),
        public_key: "-----BEGIN PUBLIC KEY-----".into(),
        display_name: Some("Zoë".into()),
        messages: vec![message(None)],
    };
    check(
        RequestJson::from(&request),
        r#"{"display_name":"Zoë","fingerprint":"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd","messages":[{"direction":"out","forward_secret":false,"id":"00112233445566778899aabbccddeeff","kind":"message","sent_at":"2025-11-25T21:40:00.123Z","seq":7,"status":"failed","text":"hello \"there\""}],"public_key":"-----BEGIN PUBLIC KEY-----"}"#,
    );
    check(
        SettingsJson {
            mailbox: "127.0.0.1:50000".into(),
            previews: false,
            theme: "dark".into(),
        },
        r#"{"mailbox":"127.0.0.1:50000","previews":false,"theme":"dark"}"#,
    );
    check(
        ErrorJson {
            error: "no identity alice".into(),
            code: "not_found".into(),
        },
        r#"{"error":"no identity alice","code":"not_found"}"#,
    );
}

#[test]
fn the_status_body_is_pinned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::with_store(
        crate::core::store::Store::in_memory().expect("store"),
        dir.path().join("keys"),
        1 << 20,
        None,
    )
    .expect("node");
    node.update_status(|s| {
        s.mailbox = "127.0.0.1:7000".into();
        s.last_error = Some("refused".into());
        s.last_sync_ms = Some(1_764_106_800_000);
    });
    check(
        status_body(&node),
        r#"{"mailbox":{"address":"127.0.0.1:7000","last_error":"refused","last_sync":"2025-11-25T21:40:00.000Z","state":"connecting"},"outbox":0}"#,
    );
    assert_eq!(
        status_json(&node).to_string(),
        serde_json::to_string(&status_body(&node)).expect("serializes"),
        "the event stream writes the same"
    );
}

#[tokio::test]
async fn the_contact_json_is_unchanged_but_for_its_key_unread_preview_and_forward_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = std::sync::Arc::new(
        Node::with_store(
            crate::core::store::Store::in_memory().expect("store"),
            dir.path().join("keys"),
            1 << 20,
            None,
        )
        .expect("node"),
    );
    node.create_identity("alice".into(), None)
        .await
        .expect("alice");
    node.create_identity("bob".into(), Some("Bob".into()))
        .await
        .expect("bob");
    let bob_key = node.identity("bob").expect("bob").public_key().to_pem();
    let c = node
        .add_contact("alice".into(), "bob".into(), bob_key)
        .await
        .expect("contact");
    let old = json!({
        "key": c.name,
        "name": c.name,
        "fingerprint": c.fingerprint,
        "forward_secret": false,
        "safety_number": node.safety_number("alice", &c).ok(),
        "verified": c.verified,
        "public_key": c.public_key,
        "added_at": rfc3339(c.added_ms),
        "mailbox": c.mailbox,
        "warning": node.mailbox_warning(&c),
        "unread": 0,
        "preview": null,
    })
    .to_string();
    let typed = serde_json::to_string(&contact_json(&node, "alice", &c)).expect("serializes");
    assert_eq!(typed, old);
    assert!(old.contains(r#""safety_number":""#), "{old}");
}

#[tokio::test]
async fn errors_have_the_error_schema() {
    for e in [
        ApiError::invalid("invalid_json", "expected value"),
        NodeError::NotFound("no identity alice".into()).into(),
        NodeError::Conflict("identity alice already exists".into()).into(),
        NodeError::TooLarge("request body too large".into()).into(),
        ApiError::Forbidden("cross-origin request refused".into()),
        ApiError::Unauthorized("this node requires its access token".into()),
        NodeError::Io(std::io::Error::other("disk")).into(),
    ] {
        let (status, code) = e.status_and_code();
        let words = e.to_string();
        let response = e.into_response();
        assert_eq!(response.status(), status);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        let parsed: ErrorJson = serde_json::from_slice(&body).expect("an ErrorJson");
        assert_eq!(
            parsed,
            ErrorJson {
                error: words,
                code: code.into()
            }
        );
    }
}
