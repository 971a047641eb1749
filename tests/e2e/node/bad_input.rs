//! Bad input, row by row: each gets its 4xx with a reason, and the node keeps serving.

#[allow(clippy::wildcard_imports)]
use super::*;

/// One bad (or good) request and what it must get.
struct Case {
    what: &'static str,
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Body,
    status: u16,
    code: Option<&'static str>,
}

enum Body {
    None,
    Json(Value),
    Raw(String),
}

fn case(what: &'static str, method: Method, path: &str, body: Body) -> Case {
    Case {
        what,
        method,
        path: path.to_owned(),
        headers: Vec::new(),
        body,
        status: 0,
        code: None,
    }
}

impl Case {
    fn expect(mut self, status: u16, code: Option<&'static str>) -> Self {
        self.status = status;
        self.code = code;
        self
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// A P-256 public key: a valid PEM, but not an RSA key.
const EC_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAElcGfa29GFSO/+4vR1e5MdTKeDxHO
vZHsXk/IscR9MHhqoFU7MgNxrxTt1MTKs4JuacLgpRI+2NPAhXYe03TGKg==
-----END PUBLIC KEY-----
";

#[tokio::test]
async fn bad_input_gets_its_4xx_and_the_node_keeps_serving() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // No mailbox is needed to refuse input.
    let node = Node::start(
        &dir.path().join("node"),
        &format!("127.0.0.1:{}", free_udp_port()?),
    )?;
    tokio::try_join!(node.create_identity("alice"), node.create_identity("bob"))?;
    let bob_pem = node.text("/api/identities/bob/public-key").await?;
    let (status, body) = node
        .post(
            "/api/identities/alice/contacts",
            json!({ "name": "bob", "public_key": bob_pem }),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    let [carol] = identities().await?;
    let carol_pem = carol.public_key().to_pem();
    let own_origin = node.url.clone();
    let post = Method::POST;
    let get = Method::GET;
    let messages = "/api/identities/alice/contacts/bob/messages";

    let mut cases = Vec::new();
    for (what, name) in [
        ("empty identity name", String::new()),
        ("identity name .", ".".to_owned()),
        ("identity name ..", "..".to_owned()),
        ("identity name with a slash", "a/b".to_owned()),
        ("identity name of 65 characters", "x".repeat(65)),
        ("identity name not ASCII", "é".to_owned()),
        ("identity name ../x", "../x".to_owned()),
        ("identity name /abs", "/abs".to_owned()),
        (
            "identity name with a control character",
            "a\u{7}b".to_owned(),
        ),
        ("identity name with a newline", "a\nb".to_owned()),
        ("identity name of 10,000 characters", "x".repeat(10_000)),
    ] {
        cases.push(
            case(
                what,
                post.clone(),
                "/api/identities",
                Body::Json(json!({ "id": name })),
            )
            .expect(400, Some("invalid_name")),
        );
    }
    cases.extend([
        case(
            "identity name of 64 characters",
            post.clone(),
            "/api/identities",
            Body::Json(json!({ "id": "x".repeat(64) })),
        )
        .expect(201, None),
        case(
            "duplicate identity",
            post.clone(),
            "/api/identities",
            Body::Json(json!({ "id": "alice" })),
        )
        .expect(409, Some("already_exists")),
        case(
            "a public key that is not PEM",
            post.clone(),
            "/api/identities/alice/contacts",
            Body::Json(json!({ "name": "carol", "public_key": "-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n" })),
        )
        .expect(400, Some("invalid_public_key")),
        case(
            "an EC public key",
            post.clone(),
            "/api/identities/alice/contacts",
            Body::Json(json!({ "name": "carol", "public_key": EC_PUBLIC_KEY })),
        )
        .expect(400, Some("invalid_public_key")),
        case(
            "a bad invite",
            post.clone(),
            "/api/identities/alice/contacts",
            Body::Json(json!({ "name": "carol", "invite": "sm1-garbage" })),
        )
        .expect(400, Some("invalid_invite")),
        case(
            "not an invite at all",
            post.clone(),
            "/api/identities/alice/contacts",
            Body::Json(json!({ "name": "carol", "invite": "hello" })),
        )
        .expect(400, Some("invalid_invite")),
        case(
            "a key that is already a contact",
            post.clone(),
            "/api/identities/alice/contacts",
            Body::Json(json!({ "name": "bob2", "public_key": bob_pem })),
        )
        .expect(409, Some("already_exists")),
        case(
            "a contact name that is taken",
            post.clone(),
            "/api/identities/alice/contacts",
            Body::Json(json!({ "name": "bob", "public_key": carol_pem })),
        )
        .expect(409, Some("already_exists")),
        case("unknown identity", get.clone(), "/api/identities/nobody", Body::None)
            .expect(404, Some("not_found")),
        case(
            "a limit that is not a number",
            get.clone(),
            "/api/identities/alice/contacts/bob/messages?limit=abc",
            Body::None,
        )
        .expect(400, Some("invalid_request")),
        case(
            "a limit out of range",
            get.clone(),
            "/api/identities/alice/contacts/bob/messages?limit=5000",
            Body::None,
        )
        .expect(400, Some("invalid_limit")),
        case(
            "unknown identity's contacts",
            get.clone(),
            "/api/identities/nobody/contacts",
            Body::None,
        )
        .expect(404, Some("not_found")),
        case(
            "unknown contact",
            get.clone(),
            "/api/identities/alice/contacts/nobody",
            Body::None,
        )
        .expect(404, Some("not_found")),
        case(
            "sending to an unknown contact",
            post.clone(),
            "/api/identities/alice/contacts/nobody/messages",
            Body::Json(json!({ "text": "hi" })),
        )
        .expect(404, Some("not_found")),
        case("empty text", post.clone(), messages, Body::Json(json!({ "text": "" })))
            .expect(400, Some("empty_text")),
        case("blank text", post.clone(), messages, Body::Json(json!({ "text": " \n " })))
            .expect(400, Some("empty_text")),
        case(
            "text over 65536 bytes",
            post.clone(),
            messages,
            Body::Json(json!({ "text": "x".repeat(65_537) })),
        )
        .expect(413, Some("too_large")),
        case(
            "text of exactly 65536 bytes",
            post.clone(),
            messages,
            Body::Json(json!({ "text": "é".repeat(32_768) })),
        )
        .expect(201, None),
        // Were the body read, this would be an invalid display name (400).
        case(
            "a body over 1 MiB",
            post.clone(),
            "/api/identities",
            Body::Json(json!({ "id": "big", "display_name": "x".repeat(1024 * 1024 + 1) })),
        )
        .expect(413, Some("too_large")),
        case("an unknown API route", get.clone(), "/api/nope", Body::None)
            .expect(404, Some("not_found")),
        case(
            "malformed JSON",
            post.clone(),
            "/api/identities",
            Body::Raw("{\"id\": \"carol\",".to_owned()),
        )
        .expect(400, Some("invalid_json")),
        case(
            "an unknown field",
            post.clone(),
            "/api/identities",
            Body::Json(json!({ "id": "carol", "admin": true })),
        )
        .expect(400, Some("invalid_json")),
        case("a foreign Host", get.clone(), "/api/status", Body::None)
            .header("host", "evil.example")
            .expect(403, Some("forbidden")),
        case(
            "a foreign Host with our port",
            get.clone(),
            "/api/identities",
            Body::None,
        )
        .header(
            "host",
            &format!("evil.example:{}", node.url.rsplit(':').next().unwrap_or("")),
        )
        .expect(403, Some("forbidden")),
        case(
            "a POST from a foreign Origin",
            post.clone(),
            "/api/identities",
            Body::Json(json!({ "id": "csrf" })),
        )
        .header("origin", "http://evil.example")
        .expect(403, Some("forbidden")),
        case(
            "a POST with a foreign Referer",
            post.clone(),
            "/api/identities",
            Body::Json(json!({ "id": "csrf" })),
        )
        .header("referer", "http://evil.example/page")
        .expect(403, Some("forbidden")),
        case(
            "a POST from our own Origin",
            post.clone(),
            "/api/identities",
            Body::Json(json!({ "id": "same-origin" })),
        )
        .header("origin", &own_origin)
        .expect(201, None),
        case(
            "deleting an identity without confirmation",
            Method::DELETE,
            "/api/identities/same-origin",
            Body::None,
        )
        .expect(400, Some("confirmation_required")),
        case(
            "deleting an identity with the wrong confirmation",
            Method::DELETE,
            "/api/identities/same-origin?confirm=alice",
            Body::None,
        )
        .expect(400, Some("confirmation_required")),
        case(
            "deleting an identity with confirmation",
            Method::DELETE,
            "/api/identities/same-origin?confirm=same-origin",
            Body::None,
        )
        .expect(204, None),
        case(
            "the deleted identity",
            get.clone(),
            "/api/identities/same-origin",
            Body::None,
        )
        .expect(404, Some("not_found")),
    ]);

    let mut failures = Vec::new();
    for c in cases {
        let mut request = node.request(c.method.clone(), &c.path);
        for (name, value) in &c.headers {
            request = request.header(*name, value);
        }
        request = match c.body {
            Body::None => request,
            Body::Json(v) => request.json(&v),
            Body::Raw(s) => request.header("content-type", "application/json").body(s),
        };
        let resp = request.send().await.with_context(|| c.what)?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let code = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_owned));
        if status != c.status || (c.code.is_some() && code.as_deref() != c.code) {
            failures.push(format!(
                "{}: expected {} {:?}, got {status} {}",
                c.what,
                c.status,
                c.code,
                text.chars().take(300).collect::<String>()
            ));
        }
        if status >= 400 && !text.is_empty() {
            let v: Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: an error that is not JSON: {text}", c.what))?;
            assert!(v["error"].is_string(), "{}: {v}", c.what);
        }
        let after = node
            .http
            .get(format!("{}/api/status", node.url))
            .send()
            .await
            .with_context(|| format!("the node stopped serving after {}", c.what))?;
        assert_eq!(after.status().as_u16(), 200, "after {}", c.what);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Nothing refused was created.
    let ids = node.get("/api/identities").await?;
    let mut ids: Vec<&str> = ids["identities"]
        .as_array()
        .context("identities")?
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    ids.sort_unstable();
    let long = "x".repeat(64);
    assert_eq!(ids, ["alice", "bob", long.as_str()]);
    let contacts = node.get("/api/identities/alice/contacts").await?;
    assert_eq!(contacts["contacts"].as_array().map(Vec::len), Some(1));
    Ok(())
}
