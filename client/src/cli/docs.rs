//! What the command line says about itself, for people who read it elsewhere: shell
//! completions (`clap_complete`), the man page (`clap_mangen`) and the reference of every
//! command and flag in `docs/cli.md`, each generated from the one clap definition.

use std::io::Write;

use clap::CommandFactory;
#[cfg(test)]
use clap::{Arg, Command};

use super::Args;

/// `avocet completions SHELL`: the completion script of `shell`, on stdout.
pub(crate) fn completions(shell: clap_complete::Shell) {
    let mut cmd = Args::command();
    clap_complete::generate(shell, &mut cmd, "avocet", &mut std::io::stdout().lock());
}

/// `avocet man`: the man page (roff), on stdout.
///
/// # Errors
/// When stdout cannot be written.
pub(crate) fn man() -> std::io::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Args::command()).render(&mut page)?;
    std::io::stdout().lock().write_all(&page)
}

/// The generated part of `docs/cli.md` (written and checked by this module's test): every command with its usage, what it does and a
/// table of its flags (the global ones once, first).
#[cfg(test)]
fn markdown() -> String {
    let mut cmd = Args::command().term_width(0);
    cmd.build();
    let mut out =
        String::from("## Global flags\n\nEvery command takes these, before or after its name.\n\n");
    flags(&mut out, cmd.get_arguments().filter(|a| a.is_global_set()));
    for sub in cmd.get_subcommands() {
        command(&mut out, sub, "avocet");
    }
    out
}

/// One command's section, then its subcommands'.
#[cfg(test)]
fn command(out: &mut String, cmd: &Command, parent: &str) {
    if cmd.is_hide_set() || cmd.get_name() == "help" {
        return;
    }
    let path = format!("{parent} {}", cmd.get_name());
    let about = cmd
        .get_long_about()
        .or_else(|| cmd.get_about())
        .map(|a| a.to_string())
        .unwrap_or_default();
    let usage = cmd.clone().render_usage().to_string();
    let usage = usage
        .trim_start_matches("Usage: ")
        .replace(cmd.get_name(), &path)
        .replacen(&format!("{parent} {parent}"), parent, 1);
    out.push_str(&format!(
        "\n## `{path}`\n\n{about}\n\n```text\n{usage}\n```\n"
    ));
    let own: Vec<&Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_global_set() && !a.is_hide_set())
        .filter(|a| !matches!(a.get_action(), clap::ArgAction::Help))
        .collect();
    if !own.is_empty() {
        out.push('\n');
        flags(out, own.into_iter());
    }
    for sub in cmd.get_subcommands() {
        command(out, sub, &path);
    }
}

/// A table of `args`: the flag or argument, its values and default, what it does.
#[cfg(test)]
fn flags<'a>(out: &mut String, args: impl Iterator<Item = &'a Arg>) {
    out.push_str("| flag | value | default | what |\n| --- | --- | --- | --- |\n");
    for arg in args {
        let automatic = matches!(
            arg.get_action(),
            clap::ArgAction::Help | clap::ArgAction::Version
        );
        if arg.is_hide_set() || automatic {
            continue;
        }
        let name = match (arg.get_long(), arg.get_short()) {
            (Some(long), Some(short)) => format!("`-{short}`, `--{long}`"),
            (Some(long), None) => format!("`--{long}`"),
            _ => format!("`{}`", arg.get_id().as_str().to_uppercase()),
        };
        let values: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| format!("`{}`", v.get_name()))
            .collect();
        let takes = arg.get_num_args().is_some_and(|n| n.takes_values());
        let value = match (values.is_empty(), takes) {
            (false, _) => values.join(", "),
            (true, true) => arg
                .get_value_names()
                .map(|n| {
                    n.iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_else(|| format!("`{}`", arg.get_id().as_str().to_uppercase())),
            (true, false) => String::new(),
        };
        // A switch's `false` says nothing.
        let mut default: Vec<String> = match takes {
            true => arg
                .get_default_values()
                .iter()
                .map(|v| format!("`{}`", v.to_string_lossy()))
                .collect(),
            false => Vec::new(),
        };
        if let Some(env) = arg.get_env() {
            default.push(format!("env `{}`", env.to_string_lossy()));
        }
        let what = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(|h| h.to_string().replace('\n', " ").replace('|', "\\|"))
            .unwrap_or_default();
        let required = match arg.is_required_set() {
            true => " (required)",
            false => "",
        };
        out.push_str(&format!(
            "| {name}{required} | {value} | {} | {what} |\n",
            default.join(", ")
        ));
    }
}

#[cfg(test)]
mod tests {
    /// `docs/cli.md` between its markers is what [`super::markdown`] makes of the command
    /// line as it is: a flag added, renamed or documented differently fails here until
    /// the page is regenerated (`AVOCET_WRITE_DOCS=1 cargo test -p avocet-client --bin
    /// avocet docs`).
    #[test]
    fn docs_cli_md_is_generated_from_the_command_line() {
        const START: &str = "<!-- generated from clap: do not edit by hand -->\n";
        const END: &str = "<!-- end of the generated part -->\n";
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/cli.md");
        let page = std::fs::read_to_string(&path).unwrap();
        let (head, rest) = page.split_once(START).expect("the start marker");
        let (generated, tail) = rest.split_once(END).expect("the end marker");
        let now = super::markdown();
        if std::env::var_os("AVOCET_WRITE_DOCS").is_some() {
            std::fs::write(&path, format!("{head}{START}{now}{END}{tail}")).unwrap();
            return;
        }
        assert!(
            generated == now,
            "docs/cli.md is out of date: run AVOCET_WRITE_DOCS=1 cargo test -p avocet-client \
             --bin avocet docs"
        );
    }

    /// Completions and the man page come from the same definition and name every command.
    #[test]
    fn completions_and_the_man_page_name_every_command() {
        use clap::CommandFactory;
        let mut script = Vec::new();
        let mut cmd = super::Args::command();
        clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "avocet", &mut script);
        let script = String::from_utf8(script).unwrap();
        let mut page = Vec::new();
        clap_mangen::Man::new(super::Args::command())
            .render(&mut page)
            .unwrap();
        let page = String::from_utf8(page).unwrap();
        for sub in super::Args::command().get_subcommands() {
            assert!(
                script.contains(sub.get_name()),
                "{} not completed",
                sub.get_name()
            );
            assert!(
                page.contains(sub.get_name()),
                "{} not in the man page",
                sub.get_name()
            );
        }
    }
}
