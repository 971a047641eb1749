//! What `cargo xtask test` needs from the machine besides Rust, brought where it can be: the
//! `openssl` command (the crypto interoperability tests), Chromium and chromedriver (the
//! browser tests), npm (for axe-core, the accessibility checker the browser tests run in the
//! pages, installed under `target/axe`). As root, or with password-less sudo, on a machine
//! with apt-get, the system packages are installed; elsewhere one line says what to install.

use std::process::{Command, Stdio};

use anyhow::bail;

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
