//! What `cargo xtask test` needs from the machine besides Rust, brought where it can be: the
//! `openssl` command (the crypto interoperability tests), Chromium and chromedriver (the
//! browser tests). As root, or with password-less sudo, on a machine with apt-get, they are
//! installed; elsewhere one line says what to install.

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
    if missing.is_empty() {
        return Ok(());
    }
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
        .args(&missing);
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
