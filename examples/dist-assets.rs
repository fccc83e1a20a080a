//! Writes the man pages and shell completions of `airgap-verify` from its
//! clap definitions (`src/cli.rs`), so they cannot drift from the flags:
//!
//!     cargo run --example dist-assets -- OUT_DIR
//!
//! OUT_DIR/man/man1/airgap-verify.1 and one page per subcommand
//! (`airgap-verify-bundle.1`, `airgap-verify-manifest-create.1`, ...), and
//! OUT_DIR/completions/{airgap-verify.bash, _airgap-verify, airgap-verify.fish}.
//! `scripts/dist.sh` runs it. An example rather than a subcommand: the
//! generators stay out of the shipped binary.

use std::path::PathBuf;

use clap::CommandFactory;
use clap_complete::Shell;

fn main() -> std::io::Result<()> {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: cargo run --example dist-assets -- OUT_DIR");
        std::process::exit(2);
    };
    let mut cmd = airgap_verify::cli::Cli::command();
    cmd.build();
    let man = out.join("man/man1");
    std::fs::create_dir_all(&man)?;
    clap_mangen::generate_to(cmd.clone(), &man)?;
    // clap's generated `help` subcommands get pages of their own; they say
    // nothing the command's page does not.
    for e in std::fs::read_dir(&man)? {
        let path = e?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.ends_with("-help.1") || name.contains("-help-") {
            std::fs::remove_file(&path)?;
        }
    }
    let comp = out.join("completions");
    std::fs::create_dir_all(&comp)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, "airgap-verify", &comp)?;
    }
    Ok(())
}
