//! Console-script wrappers and script shebangs, written the way pip writes them.
//!
//! Entry points: <https://packaging.python.org/en/latest/specifications/entry-points/>
//! (`entry_points.txt`, an INI file; `[console_scripts]` and `[gui_scripts]` each make a
//! wrapper in `bin/`). The wrapper text and the long-shebang fallback are those of the
//! `distlib` ScriptMaker that pip vendors, so a payload's `bin/` reads as pip would have
//! left it.

/// One `name = module:attr` entry of `[console_scripts]` or `[gui_scripts]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleScript {
    pub name: String,
    pub module: String,
    /// The dotted attribute path after the colon (`main`, or `Cli.main`).
    pub attr: String,
}

/// Reads the `[console_scripts]` and `[gui_scripts]` sections; other sections are
/// ignored. Sorted by script name.
pub fn parse_console_scripts(text: &str) -> Result<Vec<ConsoleScript>, String> {
    let mut section = String::new();
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[') {
            section = s
                .strip_suffix(']')
                .ok_or_else(|| format!("line {}: unclosed section header", i + 1))?
                .trim()
                .to_string();
            continue;
        }
        if section != "console_scripts" && section != "gui_scripts" {
            continue;
        }
        let (name, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: {line:?} is not `name = module:attr`", i + 1))?;
        let name = name.trim();
        // Extras (`module:attr [extra]`) only matter to the resolver.
        let value = value.split('[').next().unwrap_or("").trim();
        let (module, attr) = value
            .split_once(':')
            .ok_or_else(|| format!("line {}: {value:?} is not module:attr", i + 1))?;
        let (module, attr) = (module.trim(), attr.trim());
        let dotted = |s: &str| {
            !s.is_empty()
                && s.split('.')
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_'))
        };
        if name.is_empty()
            || name.contains('/')
            || name.contains('\\')
            || name.starts_with('.')
            || name.contains('\0')
        {
            return Err(format!(
                "line {}: script name {name:?} is not a plain file name",
                i + 1
            ));
        }
        if !dotted(module) || !dotted(attr) {
            return Err(format!(
                "line {}: {value:?} is not a dotted module:attr",
                i + 1
            ));
        }
        out.push(ConsoleScript {
            name: name.to_string(),
            module: module.to_string(),
            attr: attr.to_string(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    Ok(out)
}

/// The shebang distlib builds: `#!<python>` when it fits the kernel's 127-byte limit
/// and has no space, else a `/bin/sh` trampoline that execs the interpreter.
pub fn shebang(python: &str) -> String {
    if python.len() + 3 <= 127 && !python.contains(' ') {
        format!("#!{python}\n")
    } else {
        let quoted = if python.contains(' ') {
            format!("\"{python}\"")
        } else {
            python.to_string()
        };
        format!("#!/bin/sh\n'''exec' {quoted} \"$0\" \"$@\"\n' '''\n")
    }
}

/// The wrapper pip writes for a console script.
pub fn wrapper(script: &ConsoleScript, python: &str) -> String {
    let import_name = script.attr.split('.').next().unwrap_or(&script.attr);
    format!(
        "{}# -*- coding: utf-8 -*-\nimport re\nimport sys\nfrom {} import {}\nif __name__ == '__main__':\n    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n    sys.exit({}())\n",
        shebang(python),
        script.module,
        import_name,
        script.attr
    )
}

/// pip's rule for scripts in `.data/scripts`: a first line starting `#!python` becomes the
/// environment's interpreter; anything else is left as it is.
pub fn fix_script_shebang(data: &[u8], python: &str) -> Vec<u8> {
    if !data.starts_with(b"#!python") {
        return data.to_vec();
    }
    let rest = match data.iter().position(|&b| b == b'\n') {
        Some(nl) => &data[nl + 1..],
        None => &[][..],
    };
    let mut out = shebang(python).into_bytes();
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapper_is_byte_for_byte_what_pip_writes() {
        // The text of a pip 23 console script (e.g. pip's own `bin/pip3`), with its
        // shebang replaced.
        let expected = "#!/opt/heat-agent/bin/python3\n# -*- coding: utf-8 -*-\nimport re\nimport sys\nfrom pip._internal.cli.main import main\nif __name__ == '__main__':\n    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n    sys.exit(main())\n";
        let s = ConsoleScript {
            name: "pip3".into(),
            module: "pip._internal.cli.main".into(),
            attr: "main".into(),
        };
        assert_eq!(wrapper(&s, "/opt/heat-agent/bin/python3"), expected);
    }

    #[test]
    fn dotted_attr_imports_the_first_name() {
        let s = ConsoleScript {
            name: "x".into(),
            module: "m".into(),
            attr: "Cli.run".into(),
        };
        let w = wrapper(&s, "/p/bin/python3");
        assert!(
            w.contains("from m import Cli\n") && w.contains("sys.exit(Cli.run())"),
            "{w}"
        );
    }

    #[test]
    fn long_interpreter_paths_get_the_sh_trampoline() {
        let long = format!("/{}/bin/python3", "d".repeat(130));
        let s = shebang(&long);
        assert!(s.starts_with("#!/bin/sh\n'''exec' /ddd"), "{s}");
        assert!(s.ends_with("\"$0\" \"$@\"\n' '''\n"));
    }

    #[test]
    fn entry_points_are_parsed_and_other_sections_ignored() {
        let text = "[console_scripts]\nb = pkg.mod:main [extra]\na=pkg:run\n\n[oslo.config.opts]\nz = q:r\n[gui_scripts]\ng = w:x\n";
        let got = parse_console_scripts(text).unwrap();
        let names: Vec<_> = got.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "g"]);
        assert_eq!(got[1].module, "pkg.mod");
        assert_eq!(got[1].attr, "main");
        assert!(parse_console_scripts("[console_scripts]\n../evil = a:b\n").is_err());
        assert!(parse_console_scripts("[console_scripts]\nx = a:b; import os\n").is_err());
    }

    #[test]
    fn only_hash_bang_python_is_rewritten() {
        assert_eq!(
            fix_script_shebang(b"#!python\nx\n", "/v/bin/python3"),
            b"#!/v/bin/python3\nx\n"
        );
        assert_eq!(
            fix_script_shebang(b"#!pythonw\nx\n", "/v/bin/python3"),
            b"#!/v/bin/python3\nx\n"
        );
        assert_eq!(
            fix_script_shebang(b"#!/bin/bash\nx\n", "/v/bin/python3"),
            b"#!/bin/bash\nx\n"
        );
    }
}
