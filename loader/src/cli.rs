//! What the three binaries (`elig-loader`, `eligd`, `elig`) share about
//! talking to a person: one error report, and the check that every flag says
//! what it is. Here because the loader is the library all three depend on.

/// An error and its causes on one line, `outer: cause: cause`, each cause
/// once: many messages already include their cause (`{path}: {source}`), and
/// printing the chain as well repeated it two or three times.
pub fn report(e: &anyhow::Error) -> String {
    elig_wire::message::error_report(e.as_ref())
}

/// The flags and arguments of `cmd` and its subcommands that do not say
/// what they are and their default: clap's `[default: ..]`, or the help
/// text's own "(default ...)", unless required or a switch. For each
/// binary's test.
pub fn undocumented(cmd: &clap::Command) -> Vec<String> {
    fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" || arg.is_hide_set() {
                continue;
            }
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let switch = matches!(arg.get_action(), clap::ArgAction::SetTrue | clap::ArgAction::SetFalse | clap::ArgAction::Count);
            let has_default = !arg.get_default_values().is_empty()
                || help.contains("default")
                || help.contains("required")
                || arg.is_required_set()
                || switch;
            if help.trim().is_empty() || !has_default {
                out.push(format!("{path} {id}: {help:?}"));
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }
    let mut out = Vec::new();
    walk(cmd, cmd.get_name(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_without_help_or_default_is_named() {
        let cmd = clap::Command::new("t")
            .arg(clap::Arg::new("good").long("good").help("what it is (default 1)"))
            .arg(clap::Arg::new("bare").long("bare"))
            .arg(clap::Arg::new("vague").long("vague").help("a value"));
        assert_eq!(undocumented(&cmd), ["t bare: \"\"", "t vague: \"a value\""]);
    }
}
