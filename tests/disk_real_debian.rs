//! `graft inspect` and `graft cat` on a real Debian 12 cloud-init image (GPT, ext4 root),
//! built from Debian's packages by tests/fixtures/debian-image.sh, in each container a
//! cloud ships: compressed qcow2, fixed VHD, dynamic VHD. The oracle for the file bytes is
//! debugfs on the raw image (boot_support::GuestFs), not graft.

mod boot_support;

use std::process::Command;

use boot_support::*;

fn graft(args: &[&std::ffi::OsStr]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "graft {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn inspect_and_cat_a_real_debian_12_image_in_every_container() {
    let img = debian_image();
    let oracle = GuestFs::open(&img.raw);
    let os_release = oracle
        .read("/etc/os-release")
        .expect("debugfs reads /etc/os-release");
    assert!(!os_release.is_empty());

    for (path, format) in [
        (&img.qcow2, "qcow2"),
        (&img.vhd_fixed, "vhd-fixed"),
        (&img.vhd_dynamic, "vhd-dynamic"),
    ] {
        let out = graft(&["--json".as_ref(), "inspect".as_ref(), path.as_os_str()]);
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let what = format!("{} ({format})", path.display());
        assert_eq!(j["image"]["format"], format, "{what}");
        assert_eq!(j["partition_table"]["kind"], "gpt", "{what}");
        assert_eq!(j["root"]["partition"], 1, "{what}: {}", j["root"]);
        assert_eq!(j["os"]["id"], "debian", "{what}");
        assert_eq!(j["os"]["version_id"], "12", "{what}");
        assert_eq!(j["python"]["default"], "3.11", "{what}");
        assert_eq!(j["architecture"], "x86_64", "{what}");
        assert_eq!(j["init"], "systemd", "{what}");
        assert!(
            j["cloud_init"]["version"]
                .as_str()
                .is_some_and(|v| v.starts_with("22.")),
            "{what}: {}",
            j["cloud_init"]
        );
        assert!(
            j["glibc"].as_str().is_some_and(|v| v.starts_with("2.36")),
            "{what}: glibc {}",
            j["glibc"]
        );

        let cat = graft(&["cat".as_ref(), path.as_os_str(), "/etc/os-release".as_ref()]);
        assert_eq!(
            cat.stdout, os_release,
            "{what}: graft cat differs from debugfs"
        );
    }
}
