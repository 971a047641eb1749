//! The OpenAPI document's frame (info, tags, the bearer scheme, the guard's refusals on
//! every operation) and the route serving it. The operations themselves come from the
//! handlers' annotations, through the same `routes!` as the router.

#[allow(clippy::wildcard_imports)]
use super::*;

// ---------------------------------------------------------------------------------------
// The document's frame: info, tags, security, and the responses every operation can give.
// ---------------------------------------------------------------------------------------

pub(super) const API_DESCRIPTION: &str = "\
The JSON API of a Secure Messenger node, the automation contract. The node serves it on \
127.0.0.1 only.

**Errors** come with a 4xx or 5xx status and a JSON body `{\"error\": \"...\", \"code\": \"...\"}`: \
`error` is words for people, `code` a stable machine code to branch on (`not_found`, \
`already_exists`, `too_large`, `forbidden`, `internal`, or a specific one for bad input such as \
`invalid_json` or `invalid_name`). A `201 Created` carries the new resource's URL in \
`Location`.

**Host and Origin**: every request must carry the node's own `Host` (`127.0.0.1:PORT`, \
`localhost:PORT`, `[::1]:PORT` or its page host), against DNS rebinding; a request that changes state (POST, PUT, \
PATCH, DELETE) with an `Origin` or `Referer` of another origin is refused, against cross-site \
requests. Both refusals are 403 `forbidden`.

**Access token**: a node wants its access token on every request as \
`Authorization: Bearer <token>` (the configured `access_token`, or the file `access-token` in its \
data directory, made at first start) and answers 401 `unauthorized` with \
`WWW-Authenticate: Bearer` without it. Browsers never hold the token: a one-time sign-in link \
(`POST /api/sign-in`) gives them a session on the node's own host name `n-<hex>.localhost:PORT`. \
A key export from a browser session wants a sign-in of the last 5 minutes (403 \
`reauth_required`). A node started with `require_token: false` (loopback only) needs none.

Request bodies are JSON objects of at most 1 MiB; unknown fields are refused. Times are RFC 3339 \
UTC with milliseconds.";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Secure Messenger node API",
        version = env!("CARGO_PKG_VERSION"),
        description = API_DESCRIPTION,
    ),
    components(schemas(ErrorJson)),
    modifiers(&Guard),
    tags(
        (name = "identities", description = "The user's identities: keys, invites, backups."),
        (name = "contacts", description = "Contacts of an identity."),
        (name = "messages", description = "Conversations with a contact."),
        (name = "requests", description = "Messages from senders who are not contacts."),
        (name = "node", description = "The node itself: status, settings, live events, this document."),
        (name = "access", description = "Sign-in links for browsers, and their sessions."),
    )
)]
pub(super) struct ApiDoc;

/// The name of the bearer security scheme.
pub(super) const BEARER: &str = "bearer";
/// The name of the shared 403 response.
pub(super) const FORBIDDEN: &str = "Forbidden";
/// The name of the shared 401 response.
pub(super) const UNAUTHORIZED: &str = "Unauthorized";

/// What the node's request guard adds to every operation: the optional bearer token, its
/// 401 refusal (missing or wrong token), and the 403 refusal (foreign Host, cross-origin
/// change).
pub(super) struct Guard;

impl Modify for Guard {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.security_schemes.insert(
            BEARER.into(),
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The node's access token, when it is configured with one.",
                    ))
                    .build(),
            ),
        );
        let refusal = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorJson")))
                            .build(),
                    )
                    .build(),
            )
        };
        components.responses.insert(
            FORBIDDEN.into(),
            refusal(
                "Refused (`forbidden`): a foreign Host, or a cross-origin request that changes \
                 state.",
            ),
        );
        components.responses.insert(
            UNAUTHORIZED.into(),
            refusal(
                "Refused (`unauthorized`, with `WWW-Authenticate: Bearer`): the node wants its \
                 access token and the request has none, or a wrong one.",
            ),
        );
        // The bearer token; or nothing, on a node started with `require_token: false`
        // (loopback only). Browsers use a session cookie instead (see `http::auth`).
        openapi.security = Some(vec![
            SecurityRequirement::default(),
            SecurityRequirement::new(BEARER, Vec::<String>::new()),
        ]);
    }
}

/// Add the guard's 401 and 403 to every operation of `openapi` (after the paths are in).
pub(super) fn with_guard_responses(
    mut openapi: utoipa::openapi::OpenApi,
) -> utoipa::openapi::OpenApi {
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            for (status, name) in [("401", UNAUTHORIZED), ("403", FORBIDDEN)] {
                operation
                    .responses
                    .responses
                    .entry(status.into())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
            }
        }
    }
    openapi
}

/// The document as served: built once.
pub(super) static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(openapi);

/// This document: the OpenAPI description of the node's JSON API.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "node",
    responses((status = 200, description = "An OpenAPI 3.1 document", body = Object))
)]
pub(super) async fn openapi_json() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(LazyLock::force(&DOCUMENT))
}
