//! `node id|contact|send|inbox|status`: command-line clients of a running node's JSON API.
//! Answers are parsed into the API's own body types (`node::http::api`), so the client and
//! the server cannot drift apart; paths are built from segments, so names are escaped.

use std::io::Read as _;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use node::http::api::{
    ContactJson, ContactsJson, EntryJson, ErrorJson, IdentitiesJson, IdentityJson, InviteJson,
    MessageDirection, MessageJson, MessagesJson, SignInJson, StatusJson,
};
use reqwest::Url;
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

/// Where the node's API is and how to print.
#[derive(clap::Args, Debug)]
pub struct Target {
    /// The node's address (default: `listen` from the configuration, 127.0.0.1:8000).
    #[arg(long, value_name = "ADDR", global = true)]
    pub api: Option<String>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Identity commands.
#[derive(Subcommand, Debug)]
pub enum IdCommand {
    /// Create an identity (a fresh RSA-2048 key).
    Create {
        /// The id: 1 to 64 of A-Z a-z 0-9 . _ -
        id: String,
        /// A name to show others.
        #[arg(long)]
        name: Option<String>,
    },
    /// List identities.
    List,
    /// Show an identity: fingerprint, public key and invite code.
    Show {
        /// The id.
        id: String,
    },
    /// Delete an identity and its key, contacts and messages.
    Delete {
        /// The id.
        id: String,
        /// Repeat the id to confirm: deleting destroys the key.
        #[arg(long, value_name = "ID")]
        confirm: Option<String>,
    },
}

/// Contact commands.
#[derive(Subcommand, Debug)]
pub enum ContactCommand {
    /// Add a contact from a public key PEM file (`-` for standard input) or an invite code.
    Add {
        /// Your identity.
        id: String,
        /// The contact's name.
        name: String,
        #[command(flatten)]
        source: KeySource,
    },
    /// List an identity's contacts.
    List {
        /// Your identity.
        id: String,
    },
    /// Delete a contact.
    Delete {
        /// Your identity.
        id: String,
        /// The contact's name.
        name: String,
    },
}

/// Where a new contact's key comes from: exactly one of the two.
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
pub struct KeySource {
    /// A PEM file with their public key (`-` for standard input).
    #[arg(long, value_name = "FILE")]
    key: Option<String>,
    /// Their invite code.
    #[arg(long, value_name = "CODE")]
    invite: Option<String>,
}

/// The API client commands.
#[derive(Subcommand, Debug)]
pub enum ApiCommand {
    /// Identities.
    Id {
        #[command(subcommand)]
        command: IdCommand,
    },
    /// Contacts.
    Contact {
        #[command(subcommand)]
        command: ContactCommand,
    },
    /// Send a message (the text from the arguments, or standard input if `-`).
    Send {
        /// Your identity.
        id: String,
        /// The contact.
        contact: String,
        /// The text.
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// Show a conversation, oldest first.
    Inbox {
        /// Your identity.
        id: String,
        /// The contact.
        contact: String,
        /// How many of the latest messages.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Connection state, outbox and last error.
    Status,
    /// Print a new one-time sign-in link for a browser (valid 15 minutes).
    Signin,
}

struct Api {
    base: Url,
    http: Client,
    token: Option<String>,
}

impl Api {
    /// The URL of the API path made of `segments` (each escaped as a path segment).
    fn url(&self, segments: &[&str]) -> anyhow::Result<Url> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("{} cannot be a base URL", self.base))?
            .pop_if_empty()
            .push("api")
            .extend(segments);
        Ok(url)
    }

    fn call(&self, request: RequestBuilder) -> anyhow::Result<Response> {
        let request = match &self.token {
            Some(t) => request.bearer_auth(t),
            None => request,
        };
        request.send().map_err(|e| {
            if e.is_connect() {
                anyhow::anyhow!(
                    "no node is running at {}: start one with `node run` (for example `cargo run -p node -- run`), or point --api at one",
                    self.base
                )
            } else {
                anyhow::anyhow!("cannot reach the node at {}: {e}", self.base)
            }
        })
    }

    /// Make a request and parse its answer as `T`, or its error body into words.
    fn send<T: DeserializeOwned>(&self, request: RequestBuilder) -> anyhow::Result<T> {
        let response = checked(self.call(request)?)?;
        let body = response.text()?;
        serde_json::from_str(&body)
            .with_context(|| format!("unexpected answer from the node: {body}"))
    }

    fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> anyhow::Result<T> {
        self.send(self.http.get(self.url(segments)?))
    }

    fn text(&self, segments: &[&str]) -> anyhow::Result<String> {
        Ok(checked(self.call(self.http.get(self.url(segments)?))?)?.text()?)
    }
}

/// The response if it succeeded; its error words otherwise.
fn checked(response: Response) -> anyhow::Result<Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().unwrap_or_default();
    let words = serde_json::from_str::<ErrorJson>(&body)
        .map(|e| e.error)
        .unwrap_or(body);
    bail!("{words} ({status})")
}

/// What a command prints: the answer as JSON with `--json`, words otherwise.
fn out(json: bool, value: &impl Serialize, human: String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else {
        println!("{human}");
    }
}

fn stdin(what: &str) -> anyhow::Result<String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .with_context(|| format!("cannot read {what} from standard input"))?;
    Ok(s)
}

/// Run an API client command against the node at `base` (e.g. `http://127.0.0.1:8000`).
pub fn run(
    command: ApiCommand,
    base: String,
    json_out: bool,
    token: Option<String>,
) -> anyhow::Result<()> {
    let api = Api {
        base: Url::parse(&base).with_context(|| format!("--api: {base} is not a URL"))?,
        http: Client::new(),
        token,
    };
    match command {
        ApiCommand::Id { command } => id(&api, json_out, command),
        ApiCommand::Contact { command } => contact(&api, json_out, command),
        ApiCommand::Send { id, contact, text } => {
            let text = if text == ["-"] {
                stdin("the text")?
            } else {
                text.join(" ")
            };
            let url = api.url(&["identities", &id, "contacts", &contact, "messages"])?;
            let m: MessageJson = api.send(api.http.post(url).json(&json!({ "text": text })))?;
            let human = format!("queued message {} ({})", m.id, word(&m.status));
            out(json_out, &m, human);
            Ok(())
        }
        ApiCommand::Inbox { id, contact, limit } => {
            let mut url = api.url(&["identities", &id, "contacts", &contact, "messages"])?;
            url.query_pairs_mut()
                .append_pair("limit", &limit.to_string());
            let page: MessagesJson = api.send(api.http.get(url))?;
            let lines: Vec<String> = page
                .messages
                .iter()
                .rev()
                .map(|entry| match entry {
                    EntryJson::Gap(gap) => {
                        format!("-- {} message(s) missing here --", gap.missing)
                    }
                    EntryJson::Note(note) if note.warning => format!("!! {} !!", note.text),
                    EntryJson::Note(note) => format!("-- {} --", note.text),
                    EntryJson::Message(m) => {
                        let who = match m.direction {
                            MessageDirection::Out => "you",
                            MessageDirection::In => &contact,
                        };
                        format!("[{}] {who} ({}): {}", m.sent_at, word(&m.status), m.text)
                    }
                })
                .collect();
            let human = if lines.is_empty() {
                "no messages yet".into()
            } else {
                lines.join("\n")
            };
            out(json_out, &page, human);
            Ok(())
        }
        ApiCommand::Signin => {
            let link: SignInJson = api.send(api.http.post(api.url(&["sign-in"])?))?;
            let human = format!(
                "{}\n(open it in a browser before {}; it works once)",
                link.url, link.expires_at
            );
            out(json_out, &link, human);
            Ok(())
        }
        ApiCommand::Status => {
            let status: StatusJson = api.get(&["status"])?;
            let m = &status.mailbox;
            let mut human = format!(
                "mailbox: {} ({})\noutbox:  {} waiting\nlast sync: {}",
                m.state,
                m.address,
                status.outbox,
                m.last_sync.as_deref().unwrap_or("never"),
            );
            if let Some(e) = &m.last_error {
                human.push_str(&format!("\nlast error: {e}"));
            }
            out(json_out, &status, human);
            Ok(())
        }
    }
}

/// A value's word in the API (an enum that serializes as a string).
fn word(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn id(api: &Api, json_out: bool, command: IdCommand) -> anyhow::Result<()> {
    match command {
        IdCommand::Create { id, name } => {
            let body = json!({ "id": id, "display_name": name });
            let made: IdentityJson =
                api.send(api.http.post(api.url(&["identities"])?).json(&body))?;
            let human = format!(
                "created identity {} (fingerprint {})",
                made.id, made.fingerprint
            );
            out(json_out, &made, human);
        }
        IdCommand::List => {
            let list: IdentitiesJson = api.get(&["identities"])?;
            let lines: Vec<String> = list
                .identities
                .iter()
                .map(|i| {
                    let name = i.display_name.as_deref().unwrap_or("-");
                    format!("{}\t{name}\t{}", i.id, i.fingerprint)
                })
                .collect();
            let human = if lines.is_empty() {
                "no identities yet: create one with `node id create <id>`".into()
            } else {
                lines.join("\n")
            };
            out(json_out, &list, human);
        }
        IdCommand::Show { id } => {
            let identity: IdentityJson = api.get(&["identities", &id])?;
            let invite: InviteJson = api.get(&["identities", &id, "invite"])?;
            let key = api.text(&["identities", &id, "public-key"]).ok();
            let human = format!(
                "id:          {}\nname:        {}\nfingerprint: {}\ninvite:      {}{}",
                identity.id,
                identity.display_name.as_deref().unwrap_or("-"),
                identity.fingerprint,
                invite.invite,
                key.map(|k| format!("\n{k}")).unwrap_or_default(),
            );
            let mut value = serde_json::to_value(&identity)?;
            if let Some(obj) = value.as_object_mut() {
                obj.insert("invite".into(), invite.invite.into());
            }
            out(json_out, &value, human);
        }
        IdCommand::Delete { id, confirm } => {
            let Some(confirm) = confirm else {
                bail!(
                    "deleting identity {id} destroys its key and messages: repeat its id with --confirm {id}"
                );
            };
            let mut url = api.url(&["identities", &id])?;
            url.query_pairs_mut().append_pair("confirm", &confirm);
            checked(api.call(api.http.delete(url))?)?;
            out(
                json_out,
                &serde_json::Value::Null,
                format!("deleted identity {id}"),
            );
        }
    }
    Ok(())
}

fn contact(api: &Api, json_out: bool, command: ContactCommand) -> anyhow::Result<()> {
    match command {
        ContactCommand::Add { id, name, source } => {
            let body = match (source.key, source.invite) {
                (Some(path), _) => {
                    let pem = if path == "-" {
                        stdin("the key")?
                    } else {
                        std::fs::read_to_string(&path)
                            .with_context(|| format!("cannot read the key file {path}"))?
                    };
                    json!({ "name": name, "public_key": pem })
                }
                (None, Some(code)) => json!({ "name": name, "invite": code }),
                // clap requires exactly one of the two.
                (None, None) => bail!("give --key FILE or --invite CODE"),
            };
            let url = api.url(&["identities", &id, "contacts"])?;
            let c: ContactJson = api.send(api.http.post(url).json(&body))?;
            let mut human = format!(
                "added contact {} (fingerprint {})\nsafety number: {}\ncompare it with them over another channel",
                c.name,
                c.fingerprint,
                c.safety_number.as_deref().unwrap_or("")
            );
            if let Some(w) = &c.warning {
                human.push_str(&format!("\nwarning: {w}"));
            }
            out(json_out, &c, human);
        }
        ContactCommand::List { id } => {
            let list: ContactsJson = api.get(&["identities", &id, "contacts"])?;
            let lines: Vec<String> = list
                .contacts
                .iter()
                .map(|c| {
                    let verified = if c.verified {
                        "verified"
                    } else {
                        "not verified"
                    };
                    format!("{}\t{}\t{verified}", c.name, c.fingerprint)
                })
                .collect();
            let human = if lines.is_empty() {
                format!(
                    "{id} has no contacts yet: add one with `node contact add {id} <name> --invite <code>`"
                )
            } else {
                lines.join("\n")
            };
            out(json_out, &list, human);
        }
        ContactCommand::Delete { id, name } => {
            let url = api.url(&["identities", &id, "contacts", &name])?;
            checked(api.call(api.http.delete(url))?)?;
            out(
                json_out,
                &serde_json::Value::Null,
                format!("deleted contact {name}"),
            );
        }
    }
    Ok(())
}
