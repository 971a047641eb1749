//! `sm-fuzz-seeds <dir> [--with-keys]`: writes the fuzz targets' seed inputs
//! ([`tests::fuzz::seeds`]) to `<dir>/<target>/<name>`. `cargo xtask fuzz` runs it with
//! `--with-keys` into its scratch corpus under `target/fuzz/`, which adds the private-key
//! seeds that are never committed; `sm-fuzz-seeds tests/fuzz/seeds` rewrites the committed
//! seeds.

use std::path::PathBuf;

use anyhow::{Context as _, bail};

fn main() -> anyhow::Result<()> {
    let mut dir = None;
    let mut with_keys = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--with-keys" => with_keys = true,
            _ if dir.is_none() && !arg.starts_with('-') => dir = Some(PathBuf::from(arg)),
            _ => bail!("unexpected argument {arg:?}; usage: sm-fuzz-seeds <dir> [--with-keys]"),
        }
    }
    let Some(dir) = dir else {
        bail!("usage: sm-fuzz-seeds <dir> [--with-keys]");
    };
    let mut seeds = tests::fuzz::seeds();
    if with_keys {
        seeds.extend(tests::fuzz::key_seeds());
    }
    for (target, name, bytes) in seeds {
        let path = dir.join(target).join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
