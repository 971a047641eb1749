//! `node id|contact|send|inbox|status`: command-line clients of a running node's JSON API.

use std::io::Read as _;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};

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
        /// A PEM file with their public key.
        #[arg(long, value_name = "FILE", conflicts_with = "invite")]
        key: Option<String>,
        /// Their invite code.
        #[arg(long, value_name = "CODE")]
        invite: Option<String>,
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
}

struct Api {
    base: String,
    http: Client,
    token: Option<String>,
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn call(&self, request: reqwest::blocking::RequestBuilder) -> anyhow::Result<Response> {
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

    fn send(&self, request: reqwest::blocking::RequestBuilder) -> anyhow::Result<Value> {
        decode(self.call(request)?)
    }

    fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(self.url(path)))
    }

    fn text(&self, path: &str) -> anyhow::Result<String> {
        let response = self.call(self.http.get(self.url(path)))?;
        if response.status().is_success() {
            Ok(response.text()?)
        } else {
            decode(response).map(|_| String::new())
        }
    }
}

fn decode(response: Response) -> anyhow::Result<Value> {
    let status = response.status();
    let body = response.text().unwrap_or_default();
    let value: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).unwrap_or(Value::String(body))
    };
    if status.is_success() {
        Ok(value)
    } else {
        let words = value["error"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| value.to_string());
        bail!("{words} ({status})")
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn messages_oldest_first(page: &Value) -> Vec<Value> {
    let mut list: Vec<Value> = page["messages"].as_array().cloned().unwrap_or_default();
    list.reverse();
    list
}

/// Run an API client command against the node at `base` (e.g. `http://127.0.0.1:8000`).
pub fn run(
    command: ApiCommand,
    base: String,
    json_out: bool,
    token: Option<String>,
) -> anyhow::Result<()> {
    let api = Api {
        base,
        http: Client::new(),
        token,
    };
    let out = |value: &Value, human: String| {
        if json_out {
            println!("{}", pretty(value));
        } else {
            println!("{human}");
        }
    };
    match command {
        ApiCommand::Id { command } => match command {
            IdCommand::Create { id, name } => {
                let v = api.send(
                    api.http
                        .post(api.url("/api/identities"))
                        .json(&json!({ "id": id, "display_name": name })),
                )?;
                out(
                    &v,
                    format!(
                        "created identity {} (fingerprint {})",
                        v["id"].as_str().unwrap_or(""),
                        v["fingerprint"].as_str().unwrap_or("")
                    ),
                );
            }
            IdCommand::List => {
                let v = api.get("/api/identities")?;
                let lines: Vec<String> = v["identities"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|i| {
                        format!(
                            "{}\t{}\t{}",
                            i["id"].as_str().unwrap_or(""),
                            i["display_name"].as_str().unwrap_or("-"),
                            i["fingerprint"].as_str().unwrap_or("")
                        )
                    })
                    .collect();
                out(
                    &v,
                    if lines.is_empty() {
                        "no identities yet: create one with `node id create <id>`".into()
                    } else {
                        lines.join("\n")
                    },
                );
            }
            IdCommand::Show { id } => {
                let mut v = api.get(&format!("/api/identities/{id}"))?;
                let invite = api.get(&format!("/api/identities/{id}/invite"))?;
                let key = api.text(&format!("/api/identities/{id}/public-key")).ok();
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("invite".into(), invite["invite"].clone());
                }
                out(
                    &v,
                    format!(
                        "id:          {}\nname:        {}\nfingerprint: {}\ninvite:      {}{}",
                        v["id"].as_str().unwrap_or(""),
                        v["display_name"].as_str().unwrap_or("-"),
                        v["fingerprint"].as_str().unwrap_or(""),
                        invite["invite"].as_str().unwrap_or(""),
                        key.map(|k| format!("\n{k}")).unwrap_or_default(),
                    ),
                );
            }
            IdCommand::Delete { id, confirm } => {
                let Some(confirm) = confirm else {
                    bail!(
                        "deleting identity {id} destroys its key and messages: repeat its id with --confirm {id}"
                    );
                };
                let v = api.send(
                    api.http
                        .delete(api.url(&format!("/api/identities/{id}?confirm={confirm}"))),
                )?;
                out(&v, format!("deleted identity {id}"));
            }
        },
        ApiCommand::Contact { command } => match command {
            ContactCommand::Add {
                id,
                name,
                key,
                invite,
            } => {
                let body = match (key, invite) {
                    (Some(path), None) => {
                        let pem = if path == "-" {
                            let mut s = String::new();
                            std::io::stdin()
                                .read_to_string(&mut s)
                                .context("cannot read the key from standard input")?;
                            s
                        } else {
                            std::fs::read_to_string(&path)
                                .with_context(|| format!("cannot read the key file {path}"))?
                        };
                        json!({ "name": name, "public_key": pem })
                    }
                    (None, Some(code)) => json!({ "name": name, "invite": code }),
                    _ => bail!("give --key FILE or --invite CODE"),
                };
                let v = api.send(
                    api.http
                        .post(api.url(&format!("/api/identities/{id}/contacts")))
                        .json(&body),
                )?;
                let mut human = format!(
                    "added contact {} (fingerprint {})\nsafety number: {}\ncompare it with them over another channel",
                    v["name"].as_str().unwrap_or(""),
                    v["fingerprint"].as_str().unwrap_or(""),
                    v["safety_number"].as_str().unwrap_or("")
                );
                if let Some(w) = v["warning"].as_str() {
                    human.push_str(&format!("\nwarning: {w}"));
                }
                out(&v, human);
            }
            ContactCommand::List { id } => {
                let v = api.get(&format!("/api/identities/{id}/contacts"))?;
                let lines: Vec<String> = v["contacts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        format!(
                            "{}\t{}\t{}",
                            c["name"].as_str().unwrap_or(""),
                            c["fingerprint"].as_str().unwrap_or(""),
                            if c["verified"] == true {
                                "verified"
                            } else {
                                "not verified"
                            }
                        )
                    })
                    .collect();
                out(
                    &v,
                    if lines.is_empty() {
                        format!(
                            "{id} has no contacts yet: add one with `node contact add {id} <name> --invite <code>`"
                        )
                    } else {
                        lines.join("\n")
                    },
                );
            }
            ContactCommand::Delete { id, name } => {
                let v = api.send(
                    api.http
                        .delete(api.url(&format!("/api/identities/{id}/contacts/{name}"))),
                )?;
                out(&v, format!("deleted contact {name}"));
            }
        },
        ApiCommand::Send { id, contact, text } => {
            let text = if text == ["-"] {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("cannot read the text from standard input")?;
                s
            } else {
                text.join(" ")
            };
            let v = api.send(
                api.http
                    .post(api.url(&format!("/api/identities/{id}/contacts/{contact}/messages")))
                    .json(&json!({ "text": text })),
            )?;
            out(
                &v,
                format!(
                    "queued message {} ({})",
                    v["id"].as_str().unwrap_or(""),
                    v["status"].as_str().unwrap_or("")
                ),
            );
        }
        ApiCommand::Inbox { id, contact, limit } => {
            let v = api.get(&format!(
                "/api/identities/{id}/contacts/{contact}/messages?limit={limit}"
            ))?;
            let lines: Vec<String> = messages_oldest_first(&v)
                .iter()
                .map(|m| {
                    if m["kind"] == "gap" {
                        format!("-- {} message(s) missing here --", m["missing"])
                    } else {
                        let who = if m["direction"] == "out" {
                            "you".to_owned()
                        } else {
                            contact.clone()
                        };
                        format!(
                            "[{}] {who} ({}): {}",
                            m["sent_at"].as_str().unwrap_or(""),
                            m["status"].as_str().unwrap_or(""),
                            m["text"].as_str().unwrap_or("")
                        )
                    }
                })
                .collect();
            out(
                &v,
                if lines.is_empty() {
                    "no messages yet".into()
                } else {
                    lines.join("\n")
                },
            );
        }
        ApiCommand::Status => {
            let v = api.get("/api/status")?;
            let mut human = format!(
                "mailbox: {} ({})\noutbox:  {} waiting\nlast sync: {}",
                v["mailbox"]["state"].as_str().unwrap_or("?"),
                v["mailbox"]["address"].as_str().unwrap_or(""),
                v["outbox"],
                v["mailbox"]["last_sync"].as_str().unwrap_or("never"),
            );
            if let Some(e) = v["mailbox"]["last_error"].as_str() {
                human.push_str(&format!("\nlast error: {e}"));
            }
            out(&v, human);
        }
    }
    Ok(())
}
