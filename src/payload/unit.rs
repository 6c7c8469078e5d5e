//! The systemd service unit rendered from the recipe's `[service]`.
//!
//! Syntax: systemd.unit(5), systemd.service(5) and systemd.exec(5)
//! (<https://www.freedesktop.org/software/systemd/man/latest/systemd.exec.html#Environment=>):
//! each `Environment=` assignment is double-quoted with `\` and `"` escaped, and `%` is
//! doubled everywhere because systemd expands `%` specifiers in these settings.

use crate::recipe::Service;

/// Where systemd reads administrator units from; the payload lays the unit out there.
pub const UNIT_DIR: &str = "etc/systemd/system";

/// The unit's text for a guest `prefix`.
pub fn render(service: &Service, prefix: &str, recipe_name: &str) -> String {
    let sub = |s: &str| s.replace("{prefix}", prefix);
    let mut u = String::new();
    u.push_str(&format!(
        "# Written by graft from the recipe {:?}; rebuilt, not edited.\n",
        recipe_name
    ));
    u.push_str("[Unit]\n");
    u.push_str(&format!(
        "Description={}\n",
        escape_percent(&service.description)
    ));
    if !service.after.is_empty() {
        u.push_str(&format!("After={}\n", service.after.join(" ")));
    }
    if !service.wants.is_empty() {
        u.push_str(&format!("Wants={}\n", service.wants.join(" ")));
    }
    u.push_str("\n[Service]\n");
    for (key, value) in &service.environment {
        let assignment = format!("{key}={}", sub(value));
        u.push_str(&format!(
            "Environment=\"{}\"\n",
            escape_percent(&assignment.replace('\\', "\\\\").replace('"', "\\\""))
        ));
    }
    u.push_str(&format!(
        "ExecStart={}\n",
        escape_percent(&sub(&service.exec_start))
    ));
    for line in &service.extra {
        u.push_str(line);
        u.push('\n');
    }
    u.push_str("\n[Install]\n");
    u.push_str(&format!("WantedBy={}\n", service.wanted_by));
    u
}

fn escape_percent(s: &str) -> String {
    s.replace('%', "%%")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn unit_substitutes_the_prefix_and_quotes_the_environment() {
        let mut env = BTreeMap::new();
        env.insert("PATH".to_string(), "{prefix}/bin:/usr/bin".to_string());
        env.insert("ODD".to_string(), "a \"b\" 100%".to_string());
        let s = Service {
            name: "x.service".into(),
            description: "Agent".into(),
            exec_start: "{prefix}/bin/agent --command {prefix}/bin/run".into(),
            environment: env,
            wanted_by: "multi-user.target".into(),
            after: vec!["network-online.target".into()],
            wants: vec!["network-online.target".into()],
            extra: vec!["Restart=on-failure".into()],
        };
        let text = render(&s, "/opt/a", "r");
        assert!(
            text.contains("ExecStart=/opt/a/bin/agent --command /opt/a/bin/run\n"),
            "{text}"
        );
        assert!(
            text.contains("Environment=\"PATH=/opt/a/bin:/usr/bin\"\n"),
            "{text}"
        );
        assert!(
            text.contains("Environment=\"ODD=a \\\"b\\\" 100%%\"\n"),
            "{text}"
        );
        assert!(text.contains("[Install]\nWantedBy=multi-user.target\n"));
        // Sorted by key: ODD before PATH.
        assert!(text.find("ODD=").unwrap() < text.find("PATH=").unwrap());
    }
}
