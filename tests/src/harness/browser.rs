//! Real browsers: chromedriver, headless Chromium sessions, and the actions, checks and
//! finders the browser tests use.

#[allow(clippy::wildcard_imports)]
use super::*;

/// What to do when chromedriver is missing. The browser tests fail rather than skip: CI
/// installs Chromium, and a developer should too.
const NO_CHROMEDRIVER: &str = "chromedriver is not on PATH: the browser tests drive a real \
     headless Chromium through it. Install Chromium and its WebDriver, e.g. \
     `apt-get install chromium chromium-driver` on Debian or Ubuntu (`cargo xtask test` does it)";

/// Chromium's arguments: headless, no sandbox (tests run as root in CI), nothing that goes
/// to the network by itself, a fixed window size.
pub const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1000,700",
];

/// The first of `names` found in a directory of PATH.
pub fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick, released again).
pub fn free_tcp_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("bind a TCP socket")?;
    Ok(listener.local_addr()?.port())
}

/// axe-core's script, from `target/axe` where `cargo xtask test` installs it.
pub fn axe_script() -> anyhow::Result<String> {
    let bin = bin_dir();
    let path = bin
        .parent()
        .unwrap_or(&bin)
        .join("axe/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no axe-core at {}: run `cargo xtask test` (it installs it), or `npm install \
             --prefix target/axe axe-core@4.14.1`",
            path.display()
        )
    })
}

/// Where failing browser tests leave their screenshots: `target/test-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let bin = bin_dir();
    bin.parent().unwrap_or(&bin).join("test-screenshots")
}

/// A chromedriver process on an ephemeral port. Dropping it asks chromedriver to shut down
/// (which ends its sessions and their browsers), then kills it if it is still there.
#[derive(Debug)]
pub struct Chromedriver {
    child: Child,
    port: u16,
    /// Its base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
}

impl Chromedriver {
    /// Start chromedriver and wait until its `/status` says it is ready. Fails with a
    /// message saying what to install when chromedriver is missing.
    pub async fn start() -> anyhow::Result<Self> {
        let program = find_program(&["chromedriver"]).context(NO_CHROMEDRIVER)?;
        let http = reqwest::Client::new();
        let mut last_error = None;
        // The port is free when picked; retry in the rare case another process takes it first.
        for _ in 0..3 {
            let port = free_tcp_port()?;
            let child = Command::new(&program)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .with_context(|| format!("cannot start {}", program.display()))?;
            let mut driver = Self {
                child,
                port,
                url: format!("http://127.0.0.1:{port}"),
            };
            match driver.wait_ready(&http).await {
                Ok(()) => return Ok(driver),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("chromedriver did not start")))
    }

    async fn wait_ready(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("chromedriver exited at start ({status})");
            }
            let ready = http
                .get(format!("{}/status", self.url))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if let Ok(resp) = ready
                && let Ok(body) = resp.json::<Value>().await
                && body["value"]["ready"] == true
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "chromedriver did not answer on {}/status within 20 s",
                    self.url
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A new browser session with `options`: a fresh Chromium with its own profile in a new
    /// temporary directory (kept alive by the returned [`Browser`]'s session set).
    pub async fn session(
        &self,
        label: &str,
        options: &BrowserOptions,
    ) -> anyhow::Result<(Browser, tempfile::TempDir)> {
        let profile = tempfile::tempdir().context("a temporary Chromium profile")?;
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| (*a).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut chrome = serde_json::json!({ "args": args });
        if let Some(binary) = find_program(&["chromium", "chromium-browser", "google-chrome"]) {
            chrome["binary"] = binary.display().to_string().into();
        }
        if options.phone {
            chrome["mobileEmulation"] = serde_json::json!({
                "deviceMetrics": { "width": 390, "height": 844, "pixelRatio": 3.0, "touch": true },
                "userAgent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 \
                    (KHTML, like Gecko) Chrome/131.0 Mobile Safari/537.36",
            });
        }
        if !options.javascript {
            chrome["prefs"] =
                serde_json::json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), "chrome".into());
        caps.insert("goog:chromeOptions".into(), chrome);
        // The browser's console, for `Browser::console`.
        caps.insert(
            "goog:loggingPrefs".into(),
            serde_json::json!({ "browser": "ALL" }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = fantoccini::ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .with_context(|| format!("start a Chromium session ({label}) through chromedriver"))?;
        let session = client
            .session_id()
            .await?
            .context("chromedriver gave no session id")?;
        Ok((
            Browser {
                client,
                label: label.to_owned(),
                driver: self.url.clone(),
                session,
                http: reqwest::Client::new(),
            },
            profile,
        ))
    }

    /// Ask chromedriver to quit (`GET /shutdown`), with a plain blocking request: this runs
    /// from `Drop`.
    fn shutdown(&self) {
        use std::io::{Read as _, Write as _};
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let request = format!(
            "GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.port
        );
        if stream.write_all(request.as_bytes()).is_ok() {
            let _ = stream.read_to_end(&mut Vec::new());
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.shutdown();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to start a browser session.
#[derive(Clone, Debug)]
pub struct BrowserOptions {
    /// Whether pages may run scripts.
    pub javascript: bool,
    /// A phone: Chromium's mobile emulation, 390 x 844 CSS pixels with touch.
    pub phone: bool,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        Self {
            javascript: true,
            phone: false,
        }
    }
}

impl BrowserOptions {
    /// A browser with JavaScript turned off (Chromium's content setting), as some users run.
    pub fn without_javascript() -> Self {
        Self {
            javascript: false,
            ..Self::default()
        }
    }

    /// A phone's browser: a small touch screen.
    pub fn phone() -> Self {
        Self {
            phone: true,
            ..Self::default()
        }
    }
}

/// One headless Chromium, driven over WebDriver. Cheap to clone (the clones drive the same
/// browser).
#[derive(Clone, Debug)]
pub struct Browser {
    /// The WebDriver client, for anything the helpers below do not cover.
    pub client: fantoccini::Client,
    /// Who uses it (`alice`), for messages and screenshot names.
    pub label: String,
    driver: String,
    session: String,
    http: reqwest::Client,
}

/// A CSS selector locator.
fn css(selector: &str) -> fantoccini::Locator<'_> {
    fantoccini::Locator::Css(selector)
}

impl Browser {
    /// Load `url` (returns once the page has loaded).
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("{}: open {url}", self.label))
    }

    /// The URL shown now.
    pub async fn url(&self) -> anyhow::Result<String> {
        Ok(self.client.current_url().await?.to_string())
    }

    /// Reload the page.
    pub async fn reload(&self) -> anyhow::Result<()> {
        Ok(self.client.refresh().await?)
    }

    /// The first element matching the CSS `selector`; fails at once if there is none.
    pub async fn find(&self, selector: &str) -> anyhow::Result<fantoccini::elements::Element> {
        self.client
            .find(css(selector))
            .await
            .with_context(|| format!("{}: no element matches {selector:?}", self.label))
    }

    /// Every element matching the CSS `selector`.
    pub async fn find_all(
        &self,
        selector: &str,
    ) -> anyhow::Result<Vec<fantoccini::elements::Element>> {
        Ok(self.client.find_all(css(selector)).await?)
    }

    /// How many elements match the CSS `selector`.
    pub async fn count(&self, selector: &str) -> anyhow::Result<usize> {
        Ok(self.find_all(selector).await?.len())
    }

    /// Wait up to `timeout` for an element matching `selector`.
    pub async fn wait_for(
        &self,
        selector: &str,
        timeout: Duration,
    ) -> anyhow::Result<fantoccini::elements::Element> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self.find_all(selector).await?.into_iter().next() {
                return Ok(found);
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: nothing matched {selector:?} within {timeout:?}; the page is {}, \
                     showing: {:?}",
                    self.label,
                    self.url().await.unwrap_or_default(),
                    self.shows().await
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The start of what the page shows (its body's text), for error messages.
    pub async fn shows(&self) -> String {
        let text = match self.client.find(css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(e) => format!("(no body: {e})"),
        };
        text.chars().take(300).collect()
    }

    /// The rendered text of the first element matching `selector` (what a user reads).
    pub async fn text(&self, selector: &str) -> anyhow::Result<String> {
        Ok(self.find(selector).await?.text().await?)
    }

    /// The current value of the form field matching `selector`.
    pub async fn value(&self, selector: &str) -> anyhow::Result<String> {
        Ok(self
            .find(selector)
            .await?
            .prop("value")
            .await?
            .unwrap_or_default())
    }

    /// Click the element matching `selector`.
    pub async fn click(&self, selector: &str) -> anyhow::Result<()> {
        self.find(selector)
            .await?
            .click()
            .await
            .with_context(|| format!("{}: click {selector:?}", self.label))
    }

    /// Type `keys` into the field matching `selector` (special keys from
    /// [`fantoccini::key::Key`] may be mixed in).
    pub async fn type_into(&self, selector: &str, keys: &str) -> anyhow::Result<()> {
        self.find(selector)
            .await?
            .send_keys(keys)
            .await
            .with_context(|| format!("{}: type into {selector:?}", self.label))
    }

    /// The serious and critical accessibility violations axe-core finds in the page now
    /// (WCAG 2.x A and AA, and best practices), one line each: rule, help and where. The
    /// script is read from `target/axe` (`cargo xtask test` installs it there).
    pub async fn accessibility_violations(&self) -> anyhow::Result<Vec<String>> {
        let axe = axe_script()?;
        // Injected by WebDriver, which the page's Content-Security-Policy does not govern.
        self.client
            .execute(&format!("{axe}\n;window.axe = axe; return true;"), vec![])
            .await
            .with_context(|| format!("{}: load axe-core", self.label))?;
        let found = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { runOnly: { type: 'tag', values:
                     ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] } })
                   .then(function (r) {
                     done(r.violations
                       .filter(function (v) { return v.impact === 'serious' || v.impact === 'critical'; })
                       .map(function (v) {
                         return v.id + ': ' + v.help + ' (' + v.nodes.map(function (n) {
                           return n.target.join(' ');
                         }).join(', ') + ')';
                       }));
                   }, function (e) { done(['axe failed: ' + e]); });",
                vec![],
            )
            .await
            .with_context(|| format!("{}: run axe-core", self.label))?;
        Ok(found
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Run `script` (a function body; `arguments[i]` are `args`) in the page.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        self.client
            .execute(script, args)
            .await
            .with_context(|| format!("{}: run a script in the page", self.label))
    }

    /// Poll `script` until it returns something truthy (not `null`, `false`, `0` or `""`);
    /// return that. Fails after `timeout`, naming `what`.
    pub async fn wait_js(
        &self,
        timeout: Duration,
        what: &str,
        script: &str,
        args: Vec<Value>,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.js(script, args.clone()).await?;
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return Ok(value);
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: timed out after {timeout:?} waiting for {what}",
                    self.label
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The browser console's entries since the last call (`level`, `message`, `source`), as
    /// chromedriver's log endpoint gives them.
    pub async fn console(&self) -> anyhow::Result<Vec<Value>> {
        let resp = self
            .http
            .post(format!("{}/session/{}/se/log", self.driver, self.session))
            .json(&serde_json::json!({ "type": "browser" }))
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        if !status.is_success() {
            bail!("{}: reading the browser log: {status} {body}", self.label);
        }
        Ok(body["value"].as_array().cloned().unwrap_or_default())
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> anyhow::Result<Vec<u8>> {
        Ok(self.client.screenshot().await?)
    }
}

/// The browsers of one test, on one chromedriver. [`Browsers::finish`] takes the test's
/// result: on failure it saves a screenshot of every browser to
/// `target/test-screenshots/<test>.png` (`<test>-<label>.png` with several browsers); then
/// it ends the sessions.
#[derive(Debug)]
pub struct Browsers {
    test: String,
    sessions: Vec<Browser>,
    driver: Chromedriver,
    profiles: Vec<tempfile::TempDir>,
}

impl Browsers {
    /// Start chromedriver for test `test`.
    pub async fn start(test: &str) -> anyhow::Result<Self> {
        Ok(Self {
            test: test.to_owned(),
            sessions: Vec::new(),
            driver: Chromedriver::start().await?,
            profiles: Vec::new(),
        })
    }

    /// Open a new browser (its own Chromium and profile) for `label`.
    pub async fn open(&mut self, label: &str, options: BrowserOptions) -> anyhow::Result<Browser> {
        let (browser, profile) = self.driver.session(label, &options).await?;
        self.sessions.push(browser.clone());
        self.profiles.push(profile);
        Ok(browser)
    }

    /// End the test: screenshots if `result` is an error (their paths are printed), then
    /// close every browser; returns `result`.
    pub async fn finish(self, result: anyhow::Result<()>) -> anyhow::Result<()> {
        if result.is_err() {
            let dir = screenshot_dir();
            let _ = std::fs::create_dir_all(&dir);
            for browser in &self.sessions {
                let name = if self.sessions.len() == 1 {
                    format!("{}.png", self.test)
                } else {
                    format!("{}-{}.png", self.test, browser.label)
                };
                let path = dir.join(name);
                match browser.screenshot().await {
                    Ok(png) => match std::fs::write(&path, png) {
                        Ok(()) => eprintln!("screenshot: {}", path.display()),
                        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
                    },
                    Err(e) => eprintln!("no screenshot of {}'s browser: {e:#}", browser.label),
                }
            }
        }
        for browser in self.sessions {
            let _ = browser.client.close().await;
        }
        result
    }
}
